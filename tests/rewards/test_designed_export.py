"""Designed data leaves as training data: approved rewrites train TRL's SFTTrainer, expanded
rankings (and every other tagged pair) train RewardTrainer, one step each on tiny local models;
the API streams the new formats to leads and engineers only."""
from __future__ import annotations

import json
import math
import uuid

import pytest

from annotation.models import Role
from annotation.services.negatives import NegativeInput, negative_submit
from annotation.services.rankings import RankingInput, ranking_submit
from annotation.services.rewrites import RewriteInput, rewrite_approve, rewrite_submit
from annotation.services.queue import queue_next
from tests.factories import ProjectFactory, adversarial_line, api_as, bad_case_line, import_lines, member, ranking_line

pytestmark = pytest.mark.django_db


@pytest.fixture
def designed():
    """A project with two approved rewrites (one multi-turn), one adversarial negative, and
    three rankings of a four-response item with ties."""
    project = ProjectFactory(overlap=3)
    import_lines(project, [
        bad_case_line("Who wrote Hamlet?", "Charles Dickens."),
        {**bad_case_line("x", "Yes."), "prompt": [
            {"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Is 7 prime?"}]},
        ranking_line("Rank these answers", 4),
        adversarial_line("What is 2 + 2?", "4."),
    ])
    expert, lead = member(project), member(project, Role.LEAD)
    gold = {"Who wrote Hamlet?": "William Shakespeare.", "Is 7 prime?": "Yes: 7 has no divisors but 1 and itself."}
    for _ in range(4):
        assignment = queue_next(project=project, annotator=expert)
        prompt = assignment.item.prompt.messages[-1]["content"]
        kind = assignment.item.kind
        if kind == "rewrite":
            rewrite, _ = rewrite_submit(
                assignment_id=assignment.pk, author=expert, client_token=uuid.uuid4(),
                data=RewriteInput(text=gold[prompt], flaws=["hallucination"], rationale="The original was wrong."))
            rewrite_approve(rewrite_id=rewrite.pk, reviewer=lead)
        elif kind == "adversarial":
            negative_submit(assignment_id=assignment.pk, author=expert, client_token=uuid.uuid4(),
                            data=NegativeInput(text="5, obviously.", flaw_type="confident_but_wrong", rationale="Wrong sum, said with confidence."))
        else:
            ranking_submit(assignment_id=assignment.pk, annotator=expert, client_token=uuid.uuid4(),
                           data=RankingInput(order="B>A=C>D", rationale="B is the only complete answer."))
    for order in ("A>B>C>D", "D>C>B=A"):
        annotator = member(project)
        assignment = queue_next(project=project, annotator=annotator)
        assert assignment.item.kind == "ranking"
        ranking_submit(assignment_id=assignment.pk, annotator=annotator, client_token=uuid.uuid4(),
                       data=RankingInput(order=order, rationale="Ordered by correctness."))
    return project, lead


def download(user, project, **params) -> list[dict]:
    response = api_as(user).get(f"/api/projects/{project.slug}/export/", params)
    assert response.status_code == 200, response.content
    return [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]


def write(tmp_path, name: str, rows: list[dict]) -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("fmt", ["sft-messages", "sft-prompt-completion"])
def test_sft_export_of_approved_rewrites_trains_one_sft_step(designed, tmp_path, fmt):
    pytest.importorskip("trl")
    from tests.trl_tiny import train_sft_one_step

    project, lead = designed
    rows = download(lead, project, format=fmt)
    assert len(rows) == 2
    if fmt == "sft-messages":
        assert {r["messages"][-1]["content"] for r in rows} == {"William Shakespeare.", "Yes: 7 has no divisors but 1 and itself."}
        assert any(r["messages"][0]["role"] == "system" for r in rows)
    else:
        assert all(r["completion"][0]["role"] == "assistant" and r["prompt"][-1]["role"] == "user" for r in rows)
    metrics = train_sft_one_step(write(tmp_path, "sft.jsonl", rows), str(tmp_path / "sft"))
    assert metrics["global_step"] == 1 and math.isfinite(metrics["loss"])


def test_expanded_ranking_pairs_train_one_reward_model_step(designed, tmp_path):
    pytest.importorskip("trl")
    from tests.trl_tiny import train_reward_one_step

    project, lead = designed
    rows = download(lead, project, format="trl", tags="ranking")
    # B>A=C>D: 6 - 1 tie; A>B>C>D: 6; D>C>B=A: 6 - 1.
    assert len(rows) == 5 + 6 + 5 and {r["tag"] for r in rows} == {"ranking"}
    metrics = train_reward_one_step(write(tmp_path, "ranking-pairs.jsonl", rows), str(tmp_path / "rm"))
    assert metrics["global_step"] == 1 and math.isfinite(metrics["loss"])


def test_pair_export_carries_every_tag_and_the_flaw_type(designed):
    project, lead = designed
    rows = download(lead, project, format="trl-conversational")
    tags = {r["tag"] for r in rows}
    assert tags == {"rewrite", "adversarial", "ranking"}
    [adversarial] = [r for r in rows if r["tag"] == "adversarial"]
    assert adversarial["flaw_type"] == "confident_but_wrong" and adversarial["rejected"][0]["content"] == "5, obviously."
    assert all(r["flaw_type"] is None for r in rows if r["tag"] != "adversarial")
    only_rewrites = download(lead, project, format="trl", tags="rewrite")
    assert len(only_rewrites) == 2 and {r["chosen"] for r in only_rewrites} >= {"William Shakespeare."}
    ranking = download(lead, project, format="ranking")
    assert len(ranking) == 3 and all(len(r["responses"]) == 4 for r in ranking)


def test_new_exports_refuse_annotators_and_unknown_tags(designed):
    project, lead = designed
    annotator = member(project)
    for fmt in ("ranking", "sft-messages", "sft-prompt-completion"):
        assert api_as(annotator).get(f"/api/projects/{project.slug}/export/", {"format": fmt}).status_code == 403
    response = api_as(lead).get(f"/api/projects/{project.slug}/export/", {"format": "trl", "tags": "rewrite,bogus"})
    assert response.status_code == 400 and "bogus" in response.json()["tags"]
