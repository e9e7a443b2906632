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
from annotation.services.queue import queue_next
from tests.factories import ItemFactory, ProjectFactory, api_as, label_all, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    project = ProjectFactory(overlap=3)
    ItemFactory.create_batch(12, project=project)
    # Everyone prefers response a (whichever side it was shown on): a clear consensus.
    label_all(project, [member(project) for _ in range(3)], strength="strong", rationale="a is better")
    people = {r: member(project, r) for r in (Role.LEAD, Role.ENGINEER, Role.ANNOTATOR)}
    people["outsider"] = member(ProjectFactory(), Role.LEAD)
    return project, people


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def freeze(client, project, payload: dict) -> dict:
    """POST a freeze (202), do the worker's part, and read the set back through the API."""
    from rewards.services.sets import freeze_run

    response = client.post(f"/api/projects/{project.slug}/sets/", payload, format="json")
    assert response.status_code == 202, response.content
    queued = response.json()
    assert queued["status"] == "queued" and queued["preference_set"] is None
    freeze_run(request_id=queued["id"])  # what the worker does (test_freeze_runs_on_a_real_worker: a real one)
    done = client.get(f"/api/freezes/{queued['id']}/").json()
    assert done["status"] == "succeeded" and done["percent"] == 100
    return client.get(f"/api/sets/{done['preference_set']}/").json()


def test_freeze_read_export_and_diff_through_the_api(world):
    project, people = world
    engineer = api_as(people["engineer"])
    url = f"/api/projects/{project.slug}/sets/"
    s1 = freeze(engineer, project, {"name": "first", "policy": {"aggregation": "majority", "test_fraction": 0.25, "seed": 1}})
    assert s1["version"] == 1 and s1["counts"]["pairs"] == 12 and s1["counts"]["by_split"] == {"test": 3, "train": 9}
    s2 = freeze(engineer, project, {"policy": {"aggregation": "majority", "test_fraction": 0.25, "seed": 1}})
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
    refused = engineer.post(url, {"policy": {"domain_targets": {"x": 0.7, "y": 0.7}}}, format="json")
    assert refused.status_code == 400 and "domain_targets" in refused.json()["policy"]
    sampled = freeze(engineer, project, {"policy": {"aggregation": "majority", "per_domain_cap": 5, "chosen_shorter_share": 0.5}})
    assert sampled["policy"]["per_domain_cap"] == 5 and sampled["counts"]["pairs"] <= 5


def test_nobody_edits_a_frozen_set_and_only_leads_and_engineers_see_sets(world):
    project, people = world
    s = freeze(api_as(people["lead"]), project, {})
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
        ("get", "/api/freezes/999999/", {"lead": 404}),
    ]
    for method, url, refused in cases:
        for who, status in refused.items():
            client = APIClient() if who == "anonymous" else api_as(people[who])
            assert getattr(client, method)(url, {}, format="json").status_code == status, f"{who} {method} {url}"


def test_export_set_command_writes_rows_and_manifest_and_trl_trains_on_them(world, tmp_path):
    pytest.importorskip("trl")
    from tests.trl_tiny import train_dpo_one_step, train_reward_one_step

    project, people = world
    s = freeze(api_as(people["lead"]), project, {"policy": {"test_fraction": 0}})
    out = tmp_path / "set.jsonl"
    call_command("export_set", f"{project.slug}:{s['version']}", fmt="trl", out=str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    manifest = json.loads((tmp_path / "set.jsonl.manifest.json").read_text())
    assert len(rows) == manifest["rows"] == 12 and manifest["content_hash"] == s["content_hash"]
    assert {(r["margin"], r["tag"]) for r in rows} == {(1.0, "comparison")}, [r for r in rows if r["margin"] != 1.0]
    reward = train_reward_one_step(str(out), str(tmp_path / "rm"))
    dpo = train_dpo_one_step(str(out), str(tmp_path / "dpo"))
    assert reward["global_step"] == dpo["global_step"] == 1
    assert math.isfinite(reward["loss"]) and math.isfinite(dpo["loss"])


@pytest.fixture
def designed_world():
    """Comparisons with ground truth, an approved rewrite, an adversarial negative and rankings."""
    from annotation.services.negatives import NegativeInput, negative_submit
    from annotation.services.rankings import RankingInput, ranking_submit
    from annotation.services.rewrites import RewriteInput, rewrite_approve, rewrite_submit
    from annotation.services.queue import queue_next
    from tests.factories import adversarial_line, bad_case_line, import_lines, ranking_line

    project = ProjectFactory(overlap=2)
    import_lines(project, [
        {"prompt": "What is 6 * 7?", "responses": ["42.", "48."], "domain": "math", "ground_truth": "42"},
        {"prompt": "Capital of Peru?", "responses": ["Lima.", "Cusco."], "domain": "geography"},
        bad_case_line("Who wrote Hamlet?", "Dickens."),
        adversarial_line("What is 2 + 2?", "4."),
        ranking_line("Rank these", 4, ground_truth="x"),
    ])
    lead = member(project, Role.LEAD)
    for order in ("A>B=C>D", "D>C>B>A"):
        user = member(project)
        while (a := queue_next(project=project, annotator=user)) is not None:
            kind = a.item.kind
            if kind == "comparison":
                judgment_submit(assignment_id=a.pk, annotator=user, client_token=uuid.uuid4(), data=JudgmentInput(
                    choice="left" if a.shown_left == "a" else "right", strength="clear", rationale="The first answer is correct."))
            elif kind == "rewrite":
                r, _ = rewrite_submit(assignment_id=a.pk, author=user, client_token=uuid.uuid4(),
                                      data=RewriteInput(text="Shakespeare.", flaws=["hallucination"], rationale="Wrong author."))
                rewrite_approve(rewrite_id=r.pk, reviewer=lead)
            elif kind == "adversarial":
                negative_submit(assignment_id=a.pk, author=user, client_token=uuid.uuid4(), data=NegativeInput(
                    text="5, clearly.", flaw_type="confident_but_wrong", rationale="Wrong sum stated with confidence."))
            else:
                ranking_submit(assignment_id=a.pk, annotator=user, client_token=uuid.uuid4(),
                               data=RankingInput(order=order, rationale="By correctness."))
    from rewards.curation import CurationPolicy
    from rewards.services.sets import preference_set_freeze

    return project, lead, preference_set_freeze(project=project, policy=CurationPolicy(test_fraction=0.0))


def test_every_set_format_loads_in_the_tool_that_reads_it(designed_world, tmp_path):
    datasets = pytest.importorskip("datasets")
    import pyarrow.parquet as pq

    project, lead, s = designed_world
    client = api_as(lead)

    def download(fmt: str) -> bytes:
        response = client.get(f"/api/sets/{s.pk}/export/", {"format": fmt})
        assert response.status_code == 200, (fmt, response.content[:300])
        assert json.loads(response["X-Manifest"])["read_with"]
        return b"".join(response.streaming_content)

    def load(fmt: str):
        path = tmp_path / f"{fmt}.jsonl"
        path.write_bytes(download(fmt))
        return datasets.load_dataset("json", data_files=str(path), split="train")

    prompt_only = load("trl-prompt-only")
    assert prompt_only.num_rows == 5 and set(prompt_only.column_names) == {"prompt", "ground_truth", "domain"}
    assert "42" in prompt_only["ground_truth"]
    reward = load("openrlhf-reward")
    assert set(reward.column_names) == {"prompt", "chosen", "rejected", "margin"}
    assert reward.num_rows == s.counts["pairs"] == 2 + 1 + 2 + 5 + 6  # comparisons, rewrite, two negatives, rankings
    prompts = load("openrlhf-prompt")
    assert set(prompts.column_names) == {"input", "label"} and prompts.num_rows == 5
    ranking = load("ranking")
    assert ranking.num_rows == 2
    for row in ranking:
        assert len(row["responses"]) == 4 and [r["rank"] for r in row["responses"]] == sorted(r["rank"] for r in row["responses"])
    tied = next(row for row in ranking if len({r["rank"] for r in row["responses"]}) == 3)
    assert sorted(r["score"] for r in tied["responses"]) == [0.0, 0.5, 0.5, 1.0]
    judge = load("rm-r1")
    assert judge.num_rows == s.counts["pairs"]
    winners = judge["winner"]
    assert set(winners) == {"model_a", "model_b"} and abs(winners.count("model_a") - winners.count("model_b")) <= 1
    first = judge[0]
    assert [m["role"] for m in first["context_messages"]] == ["system", "user"]
    assert "<rubric>" in first["target"] and "</eval><answer>[[" in first["target"]
    assert any("The first answer is correct." in t or "Wrong author." in t or "By correctness." in t for t in judge["target"])
    sft = load("sft")
    assert sft.num_rows == 1 and sft[0]["messages"][-1] == {"role": "assistant", "content": "Shakespeare."}
    verl_path = tmp_path / "set.parquet"
    verl_path.write_bytes(b"".join(client.get(f"/api/sets/{s.pk}/export/", {"format": "verl"}).streaming_content))
    table = pq.read_table(verl_path).to_pylist()
    assert len(table) == 5
    assert set(table[0]) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    math_row = next(r for r in table if r["ability"] == "math")
    assert math_row["reward_model"] == {"style": "rule", "ground_truth": "42"}
    assert math_row["prompt"] == [{"role": "user", "content": "What is 6 * 7?"}]
    call_command("export_set", str(s.pk), fmt="verl", out=str(tmp_path / "cmd.parquet"))
    assert pq.read_table(tmp_path / "cmd.parquet").num_rows == 5


def test_the_prompt_only_export_trains_one_grpo_step(designed_world, tmp_path):
    pytest.importorskip("trl")
    from tests.trl_tiny import train_grpo_one_step

    _, lead, s = designed_world
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(body(api_as(lead).get(f"/api/sets/{s.pk}/export/", {"format": "trl-prompt-only"})))
    metrics = train_grpo_one_step(str(path), str(tmp_path / "grpo"))
    assert metrics["global_step"] == 1 and math.isfinite(metrics["loss"]) and "reward" in metrics


def test_tag_targets_set_the_mix_counting_a_ranking_as_one_unit(designed_world):
    from rewards.curation import CurationPolicy
    from rewards.models import SetPair
    from rewards.services.sets import preference_set_freeze

    project, _, full = designed_world
    assert full.counts["by_tag"] == {"adversarial": 2, "comparison": 2, "ranking": 11, "rewrite": 1}
    mixed = preference_set_freeze(project=project, policy=CurationPolicy(tag_targets=(("comparison", 0.5),), test_fraction=0))
    pairs = list(SetPair.objects.filter(preference_set=mixed))
    units = {p.key.rsplit(":", 2)[0] if p.tag == "ranking" else p.key: p.tag for p in pairs}
    assert sum(tag == "comparison" for tag in units.values()) / len(units) == 0.5
    assert mixed.counts["left_out_tag_targets"] > 0



@pytest.mark.django_db(transaction=True)
def test_an_api_freeze_runs_on_a_real_worker_and_its_progress_is_readable(settings):
    import time

    from tests.factories import celery_worker

    project = ProjectFactory(overlap=2)
    ItemFactory.create_batch(4, project=project)
    user = member(project)
    while (assignment := queue_next(project=project, annotator=user)) is not None:
        judgment_submit(assignment_id=assignment.pk, annotator=user, client_token=uuid.uuid4(),
                        data=JudgmentInput(choice="left", strength="clear", rationale="left is better"))
    lead, annotator = api_as(member(project, Role.LEAD)), api_as(member(project, Role.ANNOTATOR))
    with celery_worker(settings):
        queued = lead.post(f"/api/projects/{project.slug}/sets/", {"policy": {"aggregation": "none"}}, format="json").json()
        assert annotator.get(f"/api/freezes/{queued['id']}/").status_code == 403
        deadline = time.monotonic() + 60
        while (state := lead.get(f"/api/freezes/{queued['id']}/").json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
    assert state["status"] == "succeeded", state
    assert lead.get(f"/api/sets/{state['preference_set']}/").json()["counts"]["pairs"] == 4
