"""Preference sets through the REST API and the export_set command: who may freeze and read,
nothing may edit, downloads are byte-identical with a manifest, and TRL trains on them as they are."""
from __future__ import annotations

import json
import math
import uuid

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from annotation.models import Role
from annotation.services.judgments import JudgmentInput, judgment_submit
from annotation.services.routing import assignment_next
from tests.conftest import api_as
from tests.factories import ItemFactory, ProjectFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    project = ProjectFactory(overlap=3)
    ItemFactory.create_batch(12, project=project)
    for _ in range(3):
        user = member(project)
        while (assignment := assignment_next(project=project, annotator=user)) is not None:
            judgment_submit(assignment_id=assignment.pk, annotator=user, client_token=uuid.uuid4(),
                            data=JudgmentInput(choice="left", strength="strong", rationale="left is better"))
    people = {r: member(project, r) for r in (Role.LEAD, Role.ENGINEER, Role.ANNOTATOR)}
    people["outsider"] = member(ProjectFactory(), Role.LEAD)
    return project, people


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_freeze_read_export_and_diff_through_the_api(world):
    project, people = world
    engineer = api_as(people["engineer"])
    url = f"/api/projects/{project.slug}/sets/"
    first = engineer.post(url, {"name": "first", "policy": {"aggregation": "majority", "test_fraction": 0.25, "seed": 1}}, format="json")
    assert first.status_code == 201, first.content
    s1 = first.json()
    assert s1["version"] == 1 and s1["counts"]["pairs"] == 12 and s1["counts"]["by_split"] == {"test": 3, "train": 9}
    s2 = engineer.post(url, {"policy": {"aggregation": "majority", "test_fraction": 0.25, "seed": 1}}, format="json").json()
    assert s2["version"] == 2 and s2["content_hash"] == s1["content_hash"]
    a = engineer.get(f"/api/sets/{s1['id']}/export/", {"format": "trl-conversational"})
    b = engineer.get(f"/api/sets/{s2['id']}/export/", {"format": "trl-conversational"})
    assert body(a) == body(b)
    manifest = json.loads(a["X-Manifest"])
    assert (manifest["set_id"], manifest["version"], manifest["content_hash"], manifest["format"]) == (
        s1["id"], 1, s1["content_hash"], "trl-conversational")
    assert manifest["policy"]["aggregation"] == "majority"
    test_rows = body(engineer.get(f"/api/sets/{s1['id']}/export/", {"split": "test"})).decode().splitlines()
    assert len(test_rows) == 3
    assert engineer.get(f"/api/sets/{s1['id']}/manifest/", {"split": "test"}).json()["split"] == "test"
    assert engineer.get(f"/api/sets/{s1['id']}/diff/{s2['id']}/").json() == {
        "from": 1, "to": 2, "added": [], "removed": [], "changed": []}
    refused = engineer.post(url, {"policy": {"aggregation": "vibes"}}, format="json")
    assert refused.status_code == 400 and "aggregation" in refused.json()["policy"]


def test_nobody_edits_a_frozen_set_and_only_leads_and_engineers_see_sets(world):
    project, people = world
    s = api_as(people["lead"]).post(f"/api/projects/{project.slug}/sets/", {}, format="json").json()
    for method in ("put", "patch", "delete"):
        assert getattr(api_as(people["lead"]), method)(f"/api/sets/{s['id']}/", {"name": "x"}, format="json").status_code == 405
    cases = [
        ("post", f"/api/projects/{project.slug}/sets/", {"anonymous": 401, "annotator": 403, "outsider": 404}),
        ("get", f"/api/projects/{project.slug}/sets/", {"anonymous": 401, "annotator": 403, "outsider": 404}),
        ("get", f"/api/sets/{s['id']}/", {"anonymous": 401, "annotator": 403, "outsider": 404}),
        ("get", f"/api/sets/{s['id']}/export/", {"anonymous": 401, "annotator": 403, "outsider": 404}),
        ("get", f"/api/sets/{s['id']}/manifest/", {"anonymous": 401, "annotator": 403, "outsider": 404}),
        ("get", f"/api/sets/{s['id']}/diff/{s['id']}/", {"anonymous": 401, "annotator": 403, "outsider": 404}),
        ("get", "/api/sets/999999/", {"lead": 404}),
    ]
    for method, url, refused in cases:
        for who, status in refused.items():
            client = APIClient() if who == "anonymous" else api_as(people[who])
            assert getattr(client, method)(url, {}, format="json").status_code == status, f"{who} {method} {url}"


def test_export_set_command_writes_rows_and_manifest_and_trl_trains_on_them(world, tmp_path):
    pytest.importorskip("trl")
    from tests.trl_tiny import train_dpo_one_step, train_reward_one_step

    project, people = world
    s = api_as(people["lead"]).post(f"/api/projects/{project.slug}/sets/", {"policy": {"test_fraction": 0}}, format="json").json()
    out = tmp_path / "set.jsonl"
    call_command("export_set", f"{project.slug}:{s['version']}", fmt="trl", out=str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    manifest = json.loads((tmp_path / "set.jsonl.manifest.json").read_text())
    assert len(rows) == manifest["rows"] == 12 and manifest["content_hash"] == s["content_hash"]
    assert all(r["margin"] == 1.0 and r["tag"] == "comparison" for r in rows)
    reward = train_reward_one_step(str(out), str(tmp_path / "rm"))
    dpo = train_dpo_one_step(str(out), str(tmp_path / "dpo"))
    assert reward["global_step"] == dpo["global_step"] == 1
    assert math.isfinite(reward["loss"]) and math.isfinite(dpo["loss"])
