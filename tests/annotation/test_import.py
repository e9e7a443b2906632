"""JSONL import: all-or-nothing, every bad line reported with its number, big files streamed."""
from __future__ import annotations

import json
import tracemalloc
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from annotation.importing import LineError, parse_line
from annotation.models import Item, Prompt
from annotation.services.imports import import_file

pytestmark = pytest.mark.django_db

GOOD = {"prompt": "What is 2+2?", "responses": ["4", {"text": "5", "model": "m2", "metadata": {"t": 0.7}}], "domain": "math"}


def write_jsonl(tmp_path, rows, name="items.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_good_file_imports_every_item(project, tmp_path):
    rows = [GOOD, {**GOOD, "prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2+2?"}], "external_id": "x1", "tags": ["multi"], "difficulty": "hard", "source": "production_bad_case"}]
    result = import_file(project=project, path=write_jsonl(tmp_path, rows))
    assert result.ok and result.items_created == 2
    multi = Prompt.objects.get(external_id="x1")
    assert multi.is_multi_turn and multi.source == "production_bad_case" and multi.difficulty == "hard"
    item = Item.objects.get(prompt=multi)
    assert (item.response_a.text, item.response_b.text, item.response_b.model_name) == ("4", "5", "m2")
    assert item.target_judgments == project.overlap


def test_any_bad_line_imports_nothing_and_every_bad_line_is_reported(project, tmp_path):
    rows = [
        GOOD,
        "{not json",
        {**GOOD, "responses": ["only one"]},
        "",
        {**GOOD, "prompt": [{"role": "robot", "content": "x"}]},
        {**GOOD, "colour": "blue"},
        {**GOOD, "external_id": "dup"},
        {**GOOD, "external_id": "dup"},
        {**GOOD, "difficulty": "brutal"},
        GOOD,
    ]
    result = import_file(project=project, path=write_jsonl(tmp_path, rows))
    assert not result.ok
    assert [e["line"] for e in result.errors] == [2, 3, 5, 6, 8, 9]
    messages = {e["line"]: e["message"] for e in result.errors}
    assert "not valid JSON" in messages[2]
    assert "one response" in messages[3] and "adversarial" in messages[3]
    assert "role 'robot'" in messages[5]
    assert "colour" in messages[6]
    assert "repeats line 7" in messages[8]
    assert "difficulty" in messages[9]
    assert Item.objects.count() == 0 and Prompt.objects.count() == 0


def test_external_id_already_in_project_is_refused(project, tmp_path):
    import_file(project=project, path=write_jsonl(tmp_path, [{**GOOD, "external_id": 7}]))
    result = import_file(project=project, path=write_jsonl(tmp_path, [GOOD, {**GOOD, "external_id": "7"}], "again.jsonl"))
    assert result.errors == [{"line": 2, "message": "external_id '7' already exists in this project"}]
    assert Item.objects.count() == 1


@pytest.mark.parametrize("raw, fragment", [
    (b"\xff\xfe", "UTF-8"),
    ("[1, 2]", "JSON object"),
    (json.dumps({"prompt": "", "responses": ["a", "b"]}), "non-empty"),
    (json.dumps({"prompt": "p", "responses": ["same", "same"]}), "response 2 repeats response 1"),
    (json.dumps({"prompt": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "responses": ["a", "b"]}), "user's turn"),
])
def test_line_validation_messages(raw, fragment):
    with pytest.raises(LineError, match=fragment):
        parse_line(raw)


def test_cli_reports_line_numbers_and_fails(project, tmp_path, capsys):
    path = write_jsonl(tmp_path, [GOOD, {"prompt": "x"}])
    with pytest.raises(CommandError, match="Nothing imported: 1 of 2 lines"):
        call_command("import_items", str(path), project=project.slug, no_progress=True)
    assert "line 2: " in capsys.readouterr().err
    assert Item.objects.count() == 0


def test_cli_imports_a_good_file(project, tmp_path, capsys):
    call_command("import_items", str(write_jsonl(tmp_path, [GOOD] * 3)), project=project.slug, no_progress=True)
    assert "Imported 3 items" in capsys.readouterr().out
    assert Item.objects.filter(project=project).count() == 3


def test_large_file_is_streamed_not_loaded(project, tmp_path):
    """20k lines (a scaled-down 100k): memory held stays far below the file size times a
    constant. Python objects for all 20k parsed items would take tens of MB."""
    path = tmp_path / "big.jsonl"
    with open(path, "w") as fh:
        for i in range(20_000):
            fh.write(json.dumps({"prompt": f"Question {i} " + "x" * 200, "responses": [f"a{i}" * 50, f"b{i}" * 50], "external_id": f"e{i}"}) + "\n")
    tracemalloc.start()
    result = import_file(project=project, path=path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.ok and Item.objects.count() == 20_000
    size = path.stat().st_size
    assert peak < size / 2, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB file"


def test_import_redelivered_after_a_worker_died_is_marked_failed_not_stuck(project, tmp_path, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from annotation.models import ImportJob
    from annotation.services.imports import import_job_create, import_job_run

    settings.MEDIA_ROOT = tmp_path
    job = import_job_create(project=project, upload=SimpleUploadedFile("a.jsonl", json.dumps(GOOD).encode()), created_by=None)
    # A worker took it, then died: it stopped beating long ago (services/jobs.py).
    long_ago = job.created_at - timedelta(hours=1)
    ImportJob.objects.filter(pk=job.pk).update(status="running", started_at=long_ago, heartbeat_at=long_ago,
                                               created_at=long_ago)
    job = import_job_run(job_id=job.pk)
    assert job.status == "failed" and "worker stopped" in job.message
    assert Item.objects.count() == 0
    done = import_job_run(job_id=job.pk)  # a further redelivery changes nothing
    assert done.status == "failed"
