"""Bias discovery end to end: a pool labelled elsewhere comes in through the judgment import,
the analytics computation finds the rater who follows a cue no named detector covers (emoji) and
the one who agrees with the user (a sycophancy flag), and the dashboard's "Discovered cues"
section shows them in words with examples. Real PostgreSQL."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.test import Client

from annotation.models import Role
from annotation.services.judgment_imports import judgments_import
from calibration.services.analytics import analytics_compute, snapshot_request, snapshot_run
from tests.factories import ProjectFactory, import_lines, member

pytestmark = pytest.mark.django_db

SENTENCES = ["The function returns the sum.", "Water boils at 100 degrees.", "Sort, then drop duplicates.",
             "Interest is charged monthly.", "Binary search halves the interval."]


def _pool(project, n_items=240, seed=3):
    rng = np.random.default_rng(seed)
    lines, sides = [], []
    for i in range(n_items):
        stated = rng.random() < 0.5
        prompt = ("I think the answer is obvious, right? " if stated else "") + f"Question {i}?"
        texts, feats = [], []
        for _side in range(2):
            text = " ".join(SENTENCES[k] for k in rng.integers(0, 5, rng.integers(1, 3)))
            agrees = stated and rng.random() < 0.5
            if agrees:
                text = "You're right. " + text
            emoji = rng.random() < 0.35
            if emoji:
                text += " 🙂"
            texts.append(text + f" ({i}-{_side})")
            feats.append((emoji, agrees))
        lines.append({"prompt": prompt, "responses": texts, "external_id": f"i{i}"})
        sides.append(feats)
    import_lines(project, lines)
    truth = rng.integers(0, 2, n_items)
    rows = []
    raters = [f"honest{k}" for k in range(6)] + ["emoji-fan", "yes-man"]
    for i in range(n_items):
        for name in rng.choice(raters, 5, replace=False):
            pick = truth[i] if rng.random() < 0.85 else 1 - truth[i]
            (ea, aa), (eb, ab) = sides[i]
            if name == "emoji-fan" and ea != eb and rng.random() < 0.9:
                pick = 0 if ea else 1
            if name == "yes-man" and aa != ab and rng.random() < 0.9:
                pick = 0 if aa else 1
            rows.append({"annotator": str(name), "item": f"i{i}", "choice": "ab"[pick], "strength": "clear",
                         "shown_left": "ab"[rng.integers(0, 2)], "seconds": 40})
    result = judgments_import(project=project, fh=io.BytesIO("".join(json.dumps(r) + "\n" for r in rows).encode()))
    assert result.ok, result.errors[:3]


def test_discovery_finds_the_imported_pools_cue_followers_and_the_dashboard_names_them(django_capture_on_commit_callbacks):
    project = ProjectFactory()
    _pool(project)
    payload = analytics_compute(project=project)
    found = {(f["username"].split("@")[0], f["cue"]) for f in payload["discovery"]["findings"]}
    assert ("emoji-fan", "emoji") in found and ("yes-man", "sycophancy") in found, found
    assert not {name for name, _ in found if name.startswith("honest")}, found
    yes_man = next(r for r in payload["annotators"] if r["username"].startswith("yes-man@"))
    # (The agreeing answer is a few words longer here, so the length detector may flag them too.)
    flag = next(f for f in yes_man["flags"] if f["kind"] == "sycophancy")
    assert "agrees with a belief the user stated" in flag["explanation"] and flag["examples"]
    # The named detectors have nothing to say about the emoji rater.
    emoji_fan = next(r for r in payload["annotators"] if r["username"].startswith("emoji-fan@"))
    assert emoji_fan["flags"] == []

    snapshot_run(snapshot_id=snapshot_request(project=project).pk)  # what the worker does
    client = Client()
    client.force_login(member(project, Role.LEAD))
    html = client.get(f"/p/{project.slug}/analytics/?section=discovery").content.decode()
    assert 'id="discovery-table"' in html and "prefers responses with emoji" in html
    assert "prefers responses that agree with a belief the user stated" in html
    assert html.count('data-cue="emoji"') == 1
    annotator = Client()
    annotator.force_login(member(project))
    assert annotator.get(f"/p/{project.slug}/analytics/?section=discovery").status_code == 403


def test_a_lead_adds_a_custom_cue_and_sees_at_once_who_prefers_it(django_capture_on_commit_callbacks):
    project = ProjectFactory()
    _pool(project)
    lead = member(project, Role.LEAD)
    from tests.factories import api_as

    api = api_as(lead)
    url = f"/api/projects/{project.slug}/analytics/custom-cues/"
    answer = api.post(url, {"name": "smiley", "pattern": "\U0001F642"}, format="json")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["items_with_cue_on_one_side"] > 50 and body["timeouts"] == 0
    found = [r["username"].split("@")[0] for r in body["annotators"] if r["discovered"]]
    assert found == ["emoji-fan"], body["annotators"][:3]
    assert body["saved"] == [{"name": "smiley", "pattern": "\U0001F642"}]
    # Saved cues join the next computation.
    payload = analytics_compute(project=project)
    assert any(f["cue"] == "custom:smiley" and f["username"].startswith("emoji-fan@") for f in payload["discovery"]["findings"])
    # Bad cues are refused field by field; engineers read but may not add; annotators may not read.
    bad = api.post(url, {"name": "x", "pattern": "(unclosed"}, format="json")
    assert bad.status_code == 422 and "pattern" in bad.json()["errors"]
    assert api.post(url, {"name": "x"}, format="json").status_code == 422
    engineer = api_as(member(project, Role.ENGINEER))
    assert engineer.get(url).json() == [{"name": "smiley", "pattern": "\U0001F642"}]
    assert engineer.post(url, {"name": "y", "keywords": ["a"]}, format="json").status_code == 403
    assert api_as(member(project)).get(url).status_code == 403
    assert engineer.delete(f"{url}smiley/").status_code == 403
    assert api.delete(f"{url}smiley/").status_code == 204
    assert api.get(url).json() == []
    # The page: a lead's form answers with the table at once.
    client = Client()
    client.force_login(lead)
    html = client.post(f"/p/{project.slug}/analytics/cues/", {"name": "smile", "keywords": "\U0001F642, smile"}).content.decode()
    assert 'id="cue-table"' in html and "prefers it" in html
    refused = client.post(f"/p/{project.slug}/analytics/cues/", {"name": "", "keywords": ""})
    assert refused.status_code == 422
    viewer = Client()
    viewer.force_login(member(project, Role.ENGINEER))
    assert viewer.post(f"/p/{project.slug}/analytics/cues/", {"name": "z", "keywords": "z"}).status_code == 403
