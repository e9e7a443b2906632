"""Anchors tagged sycophantic_agreement: the expert rejected the response that agrees with a mistaken
belief the user stated. The tag tells analytics that anchor's sycophantic side for certain, where the
premise-agreement detector reads nothing (the agreeing answer here simply restates the claim), and a
rater who prefers it is flagged against the pool, or against the experts when the whole pool shares
the bias. Untagged, the same data raises no sycophancy flag. Real PostgreSQL."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.test import Client

from annotation.models import Item, Role
from annotation.services.judgment_imports import judgments_import
from calibration.discovery import premise_agreement
from calibration.models import Anchor
from calibration.services.analytics import analytics_compute
from calibration.services.anchors import ExpertAnswer, anchor_create, expert_answer_validate
from tests.factories import ProjectFactory, api_as, import_lines, member

pytestmark = pytest.mark.django_db

CLAIMS = [("the Great Wall of China is visible from the Moon", "It is visible from the Moon with the naked eye.",
           "It is not visible from the Moon with the naked eye."),
          ("humans use only ten percent of their brains", "People use about a tenth of the brain.",
           "People use virtually all of the brain."),
          ("goldfish remember things for three seconds", "Goldfish hold memories for a few seconds.",
           "Goldfish hold memories for months."),
          ("lightning never strikes the same place twice", "A spot that was struck will not be struck again.",
           "The same spot can be struck many times.")]


def _world(project, *, n_anchors: int, tagged: bool, raters: dict[str, float], seed: int = 1):
    """Anchors whose user states a mistaken claim; response_a or response_b (at random) restates it.
    `raters` maps a name to how often they choose the restating answer on these anchors."""
    rng = np.random.default_rng(seed)
    lines, agreeing = [], []
    for i in range(n_anchors):
        claim, agrees, corrects = CLAIMS[i % len(CLAIMS)]
        a_agrees = bool(rng.integers(0, 2))
        texts = [agrees, corrects] if a_agrees else [corrects, agrees]
        lines.append({"prompt": f"My teacher told me {claim}. Can you explain why? ({i})",
                      "responses": [f"{t} ({i}-{k})" for k, t in enumerate(texts)], "external_id": f"s{i}"})
        agreeing.append("a" if a_agrees else "b")
    import_lines(project, lines)
    items = {it.prompt.external_id or it.prompt.messages[-1]["content"]: it
             for it in Item.objects.filter(project=project).select_related("prompt", "response_a", "response_b")}
    ordered = sorted(items.values(), key=lambda it: it.pk)
    for item, side in zip(ordered, agreeing):
        # The detector sees no agreement in either answer: the tag is what tells.
        prompt = item.prompt.messages[-1]["content"]
        assert premise_agreement(prompt, item.response_a.text) == premise_agreement(prompt, item.response_b.text)
        anchor_create(item=item, answer=ExpertAnswer(
            choice="b" if side == "a" else "a", strength="clear", explanation="Response A corrects the myth.",
            flaw_tags=("sycophantic_agreement",) if tagged else ()))
    rows = []
    for (name, rate), k in zip(raters.items(), range(len(raters))):
        for i, side in enumerate(agreeing):
            pick = side if rng.random() < rate else ("b" if side == "a" else "a")
            rows.append({"annotator": name, "item": f"s{i}", "choice": pick, "strength": "clear",
                         "shown_left": "ab"[(i + k) % 2], "seconds": 40})
    result = judgments_import(project=project, fh=io.BytesIO("".join(json.dumps(r) + "\n" for r in rows).encode()))
    assert result.ok, result.errors[:3]


def _sycophants(payload) -> set[str]:
    return {r["username"].split("@")[0] for r in payload["annotators"]
            if any(f["kind"] == "sycophancy" for f in r["flags"])}


@pytest.mark.parametrize("tagged", [True, False])
def test_a_tagged_anchor_reveals_a_rater_who_prefers_the_agreeing_answer(tagged):
    project = ProjectFactory()
    raters = {**{f"careful{k}": 0.1 for k in range(6)}, "pleaser": 0.85}
    _world(project, n_anchors=40, tagged=tagged, raters=raters)
    payload = analytics_compute(project=project)
    if not tagged:
        assert _sycophants(payload) == set(), "without the tag nothing says which answer agrees"
        return
    assert _sycophants(payload) == {"pleaser"}
    pleaser = next(r for r in payload["annotators"] if r["username"].startswith("pleaser@"))
    flag = next(f for f in pleaser["flags"] if f["kind"] == "sycophancy")
    assert flag["evidence"]["expert_n"] == 40 and flag["evidence"]["expert_rate"] == 0.0
    assert flag["evidence"]["annotator_rate_on_anchors"] > 0.7
    assert "the experts in 0%" in flag["explanation"]


def test_a_pool_that_shares_the_bias_is_caught_against_the_experts():
    """Everyone prefers the agreeing answer: against the pool no one stands out, against the
    experts on tagged anchors everyone does."""
    project = ProjectFactory()
    _world(project, n_anchors=40, tagged=True, raters={f"pleaser{k}": 0.8 for k in range(5)})
    payload = analytics_compute(project=project)
    assert not [f for f in payload["discovery"]["findings"] if f["cue"] == "sycophancy"]
    assert _sycophants(payload) == {f"pleaser{k}" for k in range(5)}
    flag = next(f for r in payload["annotators"] for f in r["flags"] if f["kind"] == "sycophancy")
    assert flag["evidence"]["source"] == "anchors" and flag["explanation"].startswith("Against the experts")


def test_flaw_tags_are_validated_and_kept_through_the_api_the_form_and_a_revision():
    project = ProjectFactory()
    import_lines(project, [{"prompt": "Is the Moon made of cheese?", "responses": ["Yes.", "No."]}])
    item = Item.objects.get(project=project)
    errors = expert_answer_validate(project=project, answer=ExpertAnswer(
        choice="tie", explanation="Both fine.", flaw_tags=("sycophantic_agreement",)))
    assert "flaw_tags" in errors, "a tie has no rejected response to tag"
    assert "flaw_tags" in expert_answer_validate(project=project, answer=ExpertAnswer(
        choice="b", strength="clear", explanation="Response B is right.", flaw_tags=("flattery",)))
    lead = member(project, Role.LEAD)
    made = api_as(lead).post(f"/api/projects/{project.slug}/anchors/", {
        "item": item.pk, "choice": "b", "strength": "clear", "explanation": "Response B is right.",
        "flaw_tags": ["sycophantic_agreement"]}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["flaw_tags"] == ["sycophantic_agreement"]
    refused = api_as(lead).post(f"/api/projects/{project.slug}/anchors/", {
        "item": item.pk, "choice": "b", "strength": "clear", "explanation": "x", "flaw_tags": ["nonsense"]},
        format="json")
    assert refused.status_code == 400
    annotator = member(project)
    assert api_as(annotator).post(f"/api/projects/{project.slug}/anchors/", {
        "item": item.pk, "choice": "b", "strength": "clear", "explanation": "x"}, format="json").status_code == 403

    anchor = Anchor.objects.get(item=item)
    client = Client()
    client.force_login(lead)
    page = client.get(f"/p/{project.slug}/anchors/{anchor.pk}/").content.decode()
    assert 'name="flaw_tags" value="sycophantic_agreement" checked' in page
    client.post(f"/p/{project.slug}/anchors/{anchor.pk}/", {
        "choice": "b", "strength": "clear", "explanation": "Response B is right.", "clear_cut": "on",
        "reason": "Not sycophantic after all."})
    anchor.refresh_from_db()
    assert anchor.flaw_tags == [] and anchor.revisions.get().flaw_tags == ["sycophantic_agreement"]
