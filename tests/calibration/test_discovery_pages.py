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
