"""Preference export: right pairs, streamed, and TRL trains on it unchanged."""
from __future__ import annotations

import json
import math
import uuid

import pytest
from django.core.management import call_command
from django.http import StreamingHttpResponse

from annotation.models import Prompt
from annotation.services.judgments import JudgmentInput, judgment_submit
from annotation.services.queue import queue_next
from tests.factories import ItemFactory, ProjectFactory, api_as, member

pytestmark = pytest.mark.django_db


def judge(project, user, canonical: str, strength: str = "clear"):
    """Judge the next item so that the canonical choice is `canonical` (a, b, tie, both_bad)."""
    assignment = queue_next(project=project, annotator=user)
    shown = {"a": "left" if assignment.shown_left == "a" else "right",
             "b": "right" if assignment.shown_left == "a" else "left"}.get(canonical, canonical)
    judgment, _ = judgment_submit(
        assignment_id=assignment.pk, annotator=user, client_token=uuid.uuid4(),
        data=JudgmentInput(choice=shown, strength=strength if canonical in "ab" else "", rationale="because of reasons"),
    )
    return judgment


@pytest.fixture
def labelled():
    """Item 1: a, a, b.  Item 2: tie, b, b (multi-turn).  Item 3: both_bad x3."""
    project = ProjectFactory(overlap=3)
    items = ItemFactory.create_batch(3, project=project)
    Prompt.objects.filter(pk=items[1].prompt_id).update(messages=[
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Name a colour."}])
    plan = [["a", "tie", "both_bad"], ["a", "b", "both_bad"], ["b", "b", "both_bad"]]
    strengths = ["strong", "slight", "clear"]
    for votes, strength in zip(plan, strengths):
        user = member(project)
        for canonical in votes:
            judge(project, user, canonical, strength)
    return project, items


def export(project, tmp_path, fmt="trl", aggregate="none") -> list[dict]:
    out = tmp_path / f"{fmt}-{aggregate}.jsonl"
    call_command("export_preferences", project=project.slug, fmt=fmt, aggregate=aggregate, out=str(out))
    return [json.loads(line) for line in out.read_text().splitlines()], out


def test_one_row_per_decisive_judgment_with_margin(labelled, tmp_path):
    project, items = labelled
    rows, _ = export(project, tmp_path)
    assert len(rows) == 5  # 9 judgments minus 1 tie and 3 both-bad
    a1, b1 = items[0].response_a.text, items[0].response_b.text
    first_item = [r for r in rows if r["chosen"] in (a1, b1)]
    assert sorted((r["chosen"], r["margin"]) for r in first_item) == sorted(
        [(a1, 1.0), (a1, round(1 / 3, 6)), (b1, round(2 / 3, 6))])
    assert all(set(r) == {"prompt", "chosen", "rejected", "margin", "tag", "flaw_type"} for r in rows)
    assert {(r["tag"], r["flaw_type"]) for r in rows} == {("comparison", None)}
    assert any(r["prompt"].startswith("User: Hi\n\nAssistant: Hello!") for r in rows)


def test_majority_aggregation_gives_one_row_per_item_and_drops_ties(labelled, tmp_path):
    project, items = labelled
    rows, _ = export(project, tmp_path, aggregate="majority")
    # Item 1: a wins 2-1; item 2: b wins 2-1 over tie; item 3: both bad -> no pair.
    assert [(r["chosen"], r["rejected"]) for r in rows] == [
        (items[0].response_a.text, items[0].response_b.text),
        (items[1].response_b.text, items[1].response_a.text),
    ]


def test_conversational_rows_are_message_lists(labelled, tmp_path):
    project, _ = labelled
    rows, _ = export(project, tmp_path, fmt="trl-conversational")
    assert all(r["chosen"][0]["role"] == "assistant" and r["prompt"][-1]["role"] == "user" for r in rows)


def test_rest_export_streams_the_same_rows(labelled, tmp_path):
    project, _ = labelled
    response = api_as(member(project, "engineer")).get(f"/api/projects/{project.slug}/export/", {"format": "trl", "aggregate": "majority"})
    assert response.status_code == 200 and isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode()
    _, cli = export(project, tmp_path, aggregate="majority")
    assert body == cli.read_text()


def test_rest_export_rejects_unknown_format(labelled):
    project, _ = labelled
    response = api_as(member(project, "lead")).get(f"/api/projects/{project.slug}/export/", {"format": "csv"})
    assert response.status_code == 400 and "format" in response.json()


@pytest.mark.train
@pytest.mark.parametrize("fmt", ["trl", "trl-conversational"])
def test_trl_trains_one_step_on_the_export_unchanged(labelled, tmp_path, fmt):
    datasets = pytest.importorskip("datasets")
    from tests.trl_tiny import train_dpo_one_step, train_reward_one_step

    project, _ = labelled
    _, path = export(project, tmp_path, fmt=fmt)
    loaded = datasets.load_dataset("json", data_files=str(path), split="train")
    assert loaded.num_rows == 5 and set(loaded.column_names) == {"prompt", "chosen", "rejected", "margin", "tag", "flaw_type"}
    reward = train_reward_one_step(str(path), str(tmp_path / "rm"))
    dpo = train_dpo_one_step(str(path), str(tmp_path / "dpo"))
    assert reward["global_step"] == 1 and math.isfinite(reward["loss"])
    assert dpo["global_step"] == 1 and math.isfinite(dpo["loss"])


def test_excluded_annotators_are_left_out_by_default_and_counted(labelled, tmp_path, capsys):
    from annotation.models import Judgment, Role
    from calibration.services.standing import standing_override

    project, _items = labelled
    second = Judgment.objects.filter(project=project).order_by("id")[3].annotator  # votes a, b, both_bad
    lead = member(project, Role.LEAD)
    standing_override(project=project, annotator=second, to_state="excluded", reason="Failed audits", actor=lead)

    rows, _ = export(project, tmp_path)
    assert len(rows) == 3  # 5 decisive judgments minus the excluded annotator's 2
    assert "Left out 3 judgments of 1 excluded annotator(s)" in capsys.readouterr().err
    out = tmp_path / "all.jsonl"
    call_command("export_preferences", project=project.slug, fmt="trl", aggregate="none", out=str(out), include_excluded=True)
    assert len(out.read_text().splitlines()) == 5
    assert Judgment.objects.filter(annotator=second).count() == 3  # kept for analysis

    response = api_as(lead).get(f"/api/projects/{project.slug}/export/?format=trl")
    body = b"".join(response.streaming_content).decode().splitlines()
    assert len(body) == 3
    assert (response["X-Excluded-Annotators"], response["X-Excluded-Judgments"]) == ("1", "3")
    everything = api_as(lead).get(f"/api/projects/{project.slug}/export/?format=trl&include_excluded=true")
    assert len(b"".join(everything.streaming_content).decode().splitlines()) == 5
    assert everything["X-Excluded-Judgments"] == "0"
