"""REST import runs on a real Celery worker over the real Redis broker."""
from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.models import Item, Role
from tests.factories import ProjectFactory, api_as, celery_worker, import_job_wait, member

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("celery")]


@pytest.fixture
def worker(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    with celery_worker(settings):
        yield


def upload(lines: list) -> SimpleUploadedFile:
    body = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    return SimpleUploadedFile("items.jsonl", body.encode(), content_type="application/jsonl")


def test_rest_import_is_queued_run_by_the_worker_and_reports_progress(worker):
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    rows = [{"prompt": f"Q{i}", "responses": [f"a{i}", f"b{i}"]} for i in range(25)]
    response = api_as(lead).post(f"/api/projects/{project.slug}/imports/", {"file": upload(rows)}, format="multipart")
    assert response.status_code == 202, response.content
    job = import_job_wait(response.json()["id"])
    assert job.status == "succeeded" and job.items_created == 25
    assert Item.objects.filter(project=project).count() == 25
    detail = api_as(lead).get(f"/api/imports/{job.pk}/").json()
    assert (detail["percent"], detail["message"]) == (100, "Imported 25 items.")


def test_rest_import_of_a_bad_file_fails_whole_with_line_numbers(worker):
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    rows = [{"prompt": "Q", "responses": ["a", "b"]}, "oops", {"prompt": "Q", "responses": ["a"]}]
    response = api_as(lead).post(f"/api/projects/{project.slug}/imports/", {"file": upload(rows)}, format="multipart")
    job = import_job_wait(response.json()["id"])
    assert job.status == "failed"
    assert [e["line"] for e in job.errors] == [2, 3]
    assert "Nothing was imported" in job.message
    assert Item.objects.filter(project=project).count() == 0
