"""Hostile import lines through every way in (CLI, REST on a real Celery worker, the lead page, the
anchors API and the anchors page): each bad line is reported with its number and why, and nothing
is imported. Real PostgreSQL, real Redis broker."""
from __future__ import annotations

import json
import tracemalloc

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from annotation.models import ImportJob, Item, Prompt, Response, Role
from calibration.models import Anchor
from tests.factories import ProjectFactory, api_as, celery_worker, import_job_wait, member

GOOD = {"prompt": "What is 2+2?", "responses": ["4", "5"]}
EXPERT = {"choice": "a", "strength": "clear", "explanation": "Response A adds correctly.", "calibration_set": True}
MiB = 1024 * 1024


def _with_metadata(token: str) -> str:
    """A valid comparison line whose second response carries `token`, raw, as metadata."""
    return '{"prompt": "Q?", "responses": ["4", {"text": "5", "metadata": {"m": ' + token + "}}]}"


# (case, raw line, what the reason says). Each is valid but for one hostile part.
HOSTILE: list[tuple[str, str, str]] = [
    ("lone surrogate in the prompt", json.dumps({"prompt": "caf\ud800", "responses": ["a", "b"]}), "lone surrogate"),
    ("lone surrogate in a metadata key", _with_metadata('{"\\udc00": 1}'), "lone surrogate"),
    ("NUL in a response", json.dumps({"prompt": "Q", "responses": ["a\x00", "b"]}), "NUL"),
    ("NUL in metadata", _with_metadata('"x\\u0000y"'), "NUL"),
    ("NaN", _with_metadata("NaN"), "NaN"),
    ("Infinity", _with_metadata("Infinity"), "Infinity"),
    ("-Infinity", _with_metadata("[-Infinity]"), "Infinity"),
    ("number overflowing to infinity", _with_metadata("1e400"), "too large"),
    ("5,000-digit integer", _with_metadata("9" * 5000), "more than 20 digits"),
    ("nested 100,000 deep", _with_metadata("[" * 100_000 + "]" * 100_000), "nested deeper than 32 levels"),
    ("metadata over 64 KiB", _with_metadata(json.dumps("x" * 70_000)), "MAX_METADATA_BYTES"),
    ("51 tags", json.dumps({**GOOD, "tags": [f"t{i}" for i in range(51)]}), "MAX_TAGS"),
    ("line over 4 MiB", _with_metadata(json.dumps("x" * (4 * MiB))), "MAX_LINE_BYTES"),
]
IDS = [case for case, _, _ in HOSTILE]


def jsonl(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def as_anchor(line: str) -> str:
    """The same line with an expert answer, as the anchors import wants it."""
    return '{"expert": ' + json.dumps(EXPERT) + ", " + line[1:]


def good_line(n: int) -> str:
    return json.dumps({"prompt": f"Good question {n}?", "responses": [f"yes {n}", f"no {n}"]})


def all_hostile_file(*, anchors: bool = False) -> tuple[bytes, dict[int, str]]:
    """A good line, every hostile line, a good line; and the line number expected for each case."""
    wrap = as_anchor if anchors else (lambda line: line)
    lines = [wrap(good_line(0))] + [wrap(raw) for _, raw, _ in HOSTILE] + [wrap(good_line(1))]
    return jsonl(lines), {number: reason for number, (_, _, reason) in enumerate(HOSTILE, start=2)}


def assert_every_case_reported(errors: list[dict], expected: dict[int, str]) -> None:
    assert [e["line"] for e in errors] == list(expected), errors
    for error in errors:
        assert expected[error["line"]] in error["message"], error


def nothing_imported(project) -> bool:
    return not Item.objects.filter(project=project).exists() and not Prompt.objects.filter(project=project).exists()


# ---------------------------------------------------------------- CLI


@pytest.mark.django_db
@pytest.mark.parametrize("case, raw, reason", HOSTILE, ids=IDS)
def test_cli_reports_the_hostile_line_by_number_and_imports_nothing(case, raw, reason, tmp_path, capsys):
    project = ProjectFactory()
    path = tmp_path / "items.jsonl"
    path.write_bytes(jsonl([good_line(0), raw, good_line(1)]))
    with pytest.raises(CommandError, match="Nothing imported: 1 of 3 lines are invalid"):
        call_command("import_items", str(path), project=project.slug, no_progress=True)
    err = capsys.readouterr().err
    assert f"line 2: " in err and reason in err, err
    assert "Traceback" not in err
    assert nothing_imported(project)


@pytest.mark.django_db
def test_cli_skips_a_50_mb_metadata_line_unread(tmp_path, capsys):
    """Before: accepted at 833 MB peak. Now the bounded reader skips it in 64 KiB chunks."""
    project = ProjectFactory()
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as fh:
        fh.write(good_line(0).encode() + b"\n")
        fh.write(b'{"prompt": "Q?", "responses": ["4", {"text": "5", "metadata": {"m": [')
        fh.write(b"1," * (25 * MiB) + b'1]}}]}\n')
        fh.write(good_line(1).encode() + b"\n")
    assert path.stat().st_size > 50 * MiB
    tracemalloc.start()
    try:
        with pytest.raises(CommandError, match="1 of 3 lines"):
            call_command("import_items", str(path), project=project.slug, no_progress=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "line 2: the line is longer than 4 MiB (MAX_LINE_BYTES)" in capsys.readouterr().err
    assert peak < 16 * MiB, f"peak {peak / MiB:.0f} MiB"
    assert nothing_imported(project)


@pytest.mark.django_db
def test_cli_refuses_a_file_over_the_size_limit_naming_it(tmp_path, settings, capsys):
    settings.IMPORT_MAX_FILE_BYTES = 1000
    project = ProjectFactory()
    path = tmp_path / "items.jsonl"
    path.write_bytes(jsonl([good_line(i) for i in range(40)]))
    with pytest.raises(CommandError, match="the limit is 1000 bytes \\(IMPORT_MAX_FILE_BYTES\\)"):
        call_command("import_items", str(path), project=project.slug, no_progress=True)
    assert nothing_imported(project)


# ---------------------------------------------------------------- REST, on a real worker


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("celery")
def test_rest_import_on_the_worker_reports_every_hostile_line_and_imports_nothing(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    body, expected = all_hostile_file()
    with celery_worker(settings):
        response = api_as(lead).post(
            f"/api/projects/{project.slug}/imports/",
            {"file": SimpleUploadedFile("items.jsonl", body, content_type="application/jsonl")}, format="multipart",
        )
        assert response.status_code == 202, response.content
        job = import_job_wait(response.json()["id"])
    assert job.status == "failed"
    assert job.message == f"Nothing was imported: {len(HOSTILE)} of {len(HOSTILE) + 2} lines are invalid."
    assert_every_case_reported(job.errors, expected)
    detail = api_as(lead).get(f"/api/imports/{job.pk}/").json()
    assert [e["line"] for e in detail["errors"]] == list(expected)
    assert nothing_imported(project)


@pytest.mark.django_db
def test_rest_and_page_uploads_over_the_file_limit_are_refused_before_queueing(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.IMPORT_MAX_FILE_BYTES = 1000
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    body = jsonl([good_line(i) for i in range(40)])
    api = api_as(lead).post(f"/api/projects/{project.slug}/imports/",
                            {"file": SimpleUploadedFile("items.jsonl", body)}, format="multipart")
    assert api.status_code == 422 and "IMPORT_MAX_FILE_BYTES" in api.json()["errors"]["file"]
    page = Client()
    page.force_login(lead)
    html = page.post(f"/p/{project.slug}/lead/import/", {"file": SimpleUploadedFile("items.jsonl", body)})
    assert html.status_code == 422 and "IMPORT_MAX_FILE_BYTES" in html.content.decode()
    assert not ImportJob.objects.filter(project=project).exists()
    assert nothing_imported(project)


# ---------------------------------------------------------------- anchors: API and page


@pytest.mark.django_db
def test_anchors_api_reports_every_hostile_line_and_imports_nothing():
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    body, expected = all_hostile_file(anchors=True)
    response = api_as(lead).post(f"/api/projects/{project.slug}/anchors/import/",
                                 {"file": SimpleUploadedFile("anchors.jsonl", body)}, format="multipart")
    assert response.status_code == 422, response.content
    assert_every_case_reported(response.json()["errors"], expected)
    assert not Anchor.objects.filter(project=project).exists() and nothing_imported(project)


@pytest.mark.django_db
def test_anchors_page_reports_every_hostile_line_and_imports_nothing():
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    body, expected = all_hostile_file(anchors=True)
    page = Client()
    page.force_login(lead)
    response = page.post(f"/p/{project.slug}/anchors/import/", {"file": SimpleUploadedFile("anchors.jsonl", body)})
    assert response.status_code == 302
    html = page.get(f"/p/{project.slug}/anchors/").content.decode()
    assert f"Nothing was imported: {len(HOSTILE)} line(s) are invalid." in html
    for number, reason in expected.items():
        assert f"<tr><td>{number}</td><td>" in html
        assert reason in html
    assert not Anchor.objects.filter(project=project).exists() and nothing_imported(project)


@pytest.mark.django_db
def test_anchors_file_over_its_limit_is_refused_unread(settings):
    settings.ANCHORS_IMPORT_MAX_FILE_BYTES = 1000
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    body = jsonl([as_anchor(good_line(i)) for i in range(20)])
    response = api_as(lead).post(f"/api/projects/{project.slug}/anchors/import/",
                                 {"file": SimpleUploadedFile("anchors.jsonl", body)}, format="multipart")
    assert response.status_code == 422
    assert "ANCHORS_IMPORT_MAX_FILE_BYTES" in response.json()["errors"][0]["message"]
    assert not Anchor.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_a_clean_file_with_unusual_but_valid_unicode_still_imports(tmp_path):
    """The limits refuse what cannot be stored, not what is merely unusual: bidi controls,
    combining marks, 4-byte characters, an escaped surrogate pair and tags at their limits import
    and read back intact."""
    project = ProjectFactory()
    # In Python "\ud83d\ude00" is two lone halves; json.dumps escapes them and the JSON decoder
    # joins the escaped pair into one character, as any JSON reader must.
    text = "\u202eevil\u202c cafe\u0301 \U0001F600 \ud83d\ude00"
    path = tmp_path / "items.jsonl"
    path.write_bytes(jsonl([json.dumps({"prompt": text, "responses": [text, "plain"], "tags": ["t" * 64] * 50})]))
    call_command("import_items", str(path), project=project.slug, no_progress=True)
    stored = Response.objects.get(prompt__project=project, text__startswith="\u202e")
    assert stored.text == "\u202eevil\u202c cafe\u0301 \U0001F600 \U0001F600"
