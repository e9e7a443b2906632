"""One lifecycle for every background job kind (annotation/services/jobs.py): imports, freezes and
analytics computations are failed with a reason when their worker goes silent, sent again when
their message may be lost, and retried from their page and the API. The fault tests
(tests/faults/) do the same with real workers killed and real services restarted."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from billiard.exceptions import WorkerLostError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient
from django.utils import timezone

from annotation.models import ImportJob, Item, Role
from annotation.services.imports import IMPORTS, import_job_create
from annotation.services.jobs import job_beat, job_kinds, job_task_failed, jobs_reap
from calibration.models import AnalyticsSnapshot
from calibration.services.analytics import SNAPSHOTS
from rewards.curation import CurationPolicy
from rewards.models import FreezeRequest
from rewards.services.sets import FREEZES, freeze_request
from tests.factories import ProjectFactory, api_as, celery_worker, member

LINES = b'{"prompt": "Q1", "responses": ["a", "b"]}\n{"prompt": "Q2", "responses": ["c", "d"]}\n'


def _import(project, lead) -> ImportJob:
    return import_job_create(project=project, upload=SimpleUploadedFile("two.jsonl", LINES), created_by=lead)


def _age(model, pk: int, *, status: str, seconds: float, **extra) -> None:
    """As if the job was queued (or last beat) `seconds` ago."""
    then = timezone.now() - timedelta(seconds=seconds)
    created = "requested_at" if model is AnalyticsSnapshot else "created_at"
    fields = {"status": status, created: then, **extra}
    if status == "running":
        fields.update(started_at=then, heartbeat_at=then)
    model.objects.filter(pk=pk).update(**fields)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def test_every_background_job_kind_shares_the_lifecycle():
    assert {kind.name for kind in job_kinds()} >= {"import", "freeze", "analytics computation"}


@pytest.mark.django_db
def test_a_running_job_whose_worker_went_silent_is_failed_with_its_reason_by_the_reaper(media, settings):
    settings.JOBS_STALE_AFTER_SECONDS = 60
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    dead_import, live_import = _import(project, lead), _import(project, lead)
    freeze = freeze_request(project=project, policy=CurationPolicy(), created_by=lead)
    snapshot = AnalyticsSnapshot.objects.create(project=project)
    for model, pk in ((ImportJob, dead_import.pk), (FreezeRequest, freeze.pk), (AnalyticsSnapshot, snapshot.pk)):
        _age(model, pk, status="running", seconds=61)
    _age(ImportJob, live_import.pk, status="running", seconds=30)

    reaped = jobs_reap(kinds=[IMPORTS, FREEZES, SNAPSHOTS])

    assert reaped["import"]["failed"] == [dead_import.pk]
    assert reaped["freeze"]["failed"] == [freeze.pk] and reaped["analytics computation"]["failed"] == [snapshot.pk]
    dead_import.refresh_from_db()
    assert dead_import.status == "failed" and dead_import.finished_at and dead_import.phase == ""
    assert "no heartbeat for over 60 s" in dead_import.message and "Nothing was imported." in dead_import.message
    assert "no heartbeat" in FreezeRequest.objects.get(pk=freeze.pk).error
    assert "no heartbeat" in AnalyticsSnapshot.objects.get(pk=snapshot.pk).error
    assert ImportJob.objects.get(pk=live_import.pk).status == "running"
    assert jobs_reap(kinds=[IMPORTS])["import"]["failed"] == []  # the first reason is kept


@pytest.mark.django_db
def test_a_beat_that_reached_only_the_cache_keeps_the_job_alive(media, settings):
    """An import's write transaction on SQLite blocks updates of its row: the cached beat counts."""
    settings.JOBS_STALE_AFTER_SECONDS = 60
    project = ProjectFactory()
    job = _import(project, member(project, Role.LEAD))
    _age(ImportJob, job.pk, status="running", seconds=0)
    job_beat(IMPORTS, job.pk)
    _age(ImportJob, job.pk, status="running", seconds=300)  # the row's beat looks old
    assert jobs_reap(kinds=[IMPORTS])["import"]["failed"] == []
    assert ImportJob.objects.get(pk=job.pk).status == "running"


@pytest.mark.django_db
def test_a_job_whose_worker_process_was_killed_is_failed_by_the_task_failure_hook(media):
    project = ProjectFactory()
    job = _import(project, member(project, Role.LEAD))
    _age(ImportJob, job.pk, status="running", seconds=0)
    assert job_task_failed(IMPORTS, job.pk, WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL)."))
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.message == ("The worker process died during this import (WorkerLostError: Worker exited prematurely: "
                           "signal 9 (SIGKILL).). Nothing was imported.")
    assert not job_task_failed(IMPORTS, job.pk, RuntimeError("later")), "a failed job keeps its reason"


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("celery")
def test_a_queued_job_whose_message_was_lost_is_sent_again_and_done(media, settings):
    settings.JOBS_STALE_AFTER_SECONDS = 60
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    lost = _import(project, lead)
    given_up = _import(project, lead)
    _age(ImportJob, lost.pk, status="queued", seconds=61)
    _age(ImportJob, given_up.pk, status="queued", seconds=3600)
    with celery_worker(settings):  # which empties the queue first: the jobs' messages are lost
        reaped = jobs_reap(kinds=[IMPORTS])
        assert reaped["import"] == {"failed": [given_up.pk], "resent": [lost.pk]}
        deadline = time.monotonic() + 30
        while ImportJob.objects.get(pk=lost.pk).status != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.1)
    assert ImportJob.objects.get(pk=lost.pk).status == "succeeded"
    assert Item.objects.filter(project=project).count() == 2
    given_up.refresh_from_db()
    assert given_up.status == "failed" and "No worker finished it within 30 minutes" in given_up.message


@pytest.mark.django_db
def test_a_failed_import_is_retried_from_its_stored_upload_by_api_and_page(media, django_capture_on_commit_callbacks):
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    job = _import(project, lead)
    api = api_as(lead)
    assert api.post(f"/api/imports/{job.pk}/retry/").status_code == 409  # still queued
    ImportJob.objects.filter(pk=job.pk).update(status="failed", message="The worker stopped reporting.")
    annotator = member(project)
    assert api_as(annotator).post(f"/api/imports/{job.pk}/retry/").status_code == 404

    with django_capture_on_commit_callbacks() as sent:
        answer = api.post(f"/api/imports/{job.pk}/retry/")
    assert answer.status_code == 202 and len(sent) == 1
    again = ImportJob.objects.get(pk=answer.json()["id"])
    assert (again.status, again.file.name, again.original_name) == ("queued", job.file.name, "two.jsonl")
    assert ImportJob.objects.get(pk=job.pk).status == "failed", "the failed one keeps its reason"

    page = Client()
    page.force_login(lead)
    lead_page = page.get(f"/p/{project.slug}/import/").content.decode()
    assert f'hx-post="/imports/{job.pk}/retry/"' in lead_page
    shown = page.get(f"/imports/{job.pk}/").content.decode()
    assert "Retry this import" in shown
    answer = page.post(f"/imports/{job.pk}/retry/", HTTP_HX_REQUEST="true")
    assert answer.status_code == 200 and "queued" in answer.content.decode()
    assert ImportJob.objects.filter(project=project).count() == 3


@pytest.mark.django_db
def test_an_import_that_failed_on_bad_lines_offers_no_retry(media):
    project = ProjectFactory()
    job = _import(project, member(project, Role.LEAD))
    ImportJob.objects.filter(pk=job.pk).update(status="failed", error_count=1, errors=[{"line": 2, "message": "x"}])
    job.refresh_from_db()
    assert not job.retryable


@pytest.mark.django_db
def test_a_failed_freeze_is_retried_with_the_same_policy_by_api_and_page(django_capture_on_commit_callbacks):
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    policy = CurationPolicy.from_dict({"aggregation": "majority", "test_fraction": 0.2, "seed": 7})
    failed = freeze_request(project=project, policy=policy, created_by=lead, name="nightly")
    api = api_as(lead)
    assert api.post(f"/api/freezes/{failed.pk}/retry/").status_code == 409
    FreezeRequest.objects.filter(pk=failed.pk).update(status="failed", error="The worker stopped reporting.")
    with django_capture_on_commit_callbacks() as sent:
        answer = api.post(f"/api/freezes/{failed.pk}/retry/")
    assert answer.status_code == 202 and len(sent) == 1
    again = FreezeRequest.objects.get(pk=answer.json()["id"])
    assert (again.policy, again.name, again.status) == (policy.to_dict(), "nightly", "queued")

    page = Client()
    page.force_login(lead)
    shown = page.get(f"/p/{project.slug}/sets/freezing/{failed.pk}/").content.decode()
    assert "Nothing was frozen: The worker stopped reporting." in shown and "Retry with the same policy" in shown
    answer = page.post(f"/p/{project.slug}/sets/freezing/{failed.pk}/retry/")
    newest = FreezeRequest.objects.latest("pk")
    assert answer.status_code == 302 and answer["Location"] == f"/p/{project.slug}/sets/freezing/{newest.pk}/"
    assert newest.policy == policy.to_dict()


@pytest.mark.django_db
def test_a_failed_analytics_computation_shows_a_retry_that_queues_a_new_one(django_capture_on_commit_callbacks):
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    AnalyticsSnapshot.objects.create(project=project, status="failed", error="The worker stopped reporting.")
    page = Client()
    page.force_login(lead)
    shown = page.get(f"/p/{project.slug}/analytics/").content.decode()
    assert "The computation failed: The worker stopped reporting." in shown and ">Retry</button>" in shown
    with django_capture_on_commit_callbacks() as sent:
        answer = page.post(f"/p/{project.slug}/analytics/refresh/", HTTP_HX_REQUEST="true")
    assert answer.status_code == 200 and len(sent) == 1
    assert AnalyticsSnapshot.objects.filter(project=project, status="queued").count() == 1


@pytest.mark.django_db
def test_pages_and_the_api_read_a_job_while_the_cache_is_down(media, settings):
    """Redis (the cache) down: progress and beats are skipped, not errors."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:9/0"}}  # nothing listens on port 9
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    job = _import(project, lead)
    _age(ImportJob, job.pk, status="running", seconds=0)
    job_beat(IMPORTS, job.pk)
    assert api_as(lead).get(f"/api/imports/{job.pk}/").json()["status"] == "running"
    page = Client()
    page.force_login(lead)
    assert page.get(f"/imports/{job.pk}/").status_code == 200


@pytest.mark.django_db
def test_nobody_but_leads_and_engineers_of_the_project_retries_a_job(media):
    """Every retry endpoint, page and API, refuses anonymous users, annotators and other projects'
    leads, and re-queues nothing for them."""
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    job = _import(project, lead)
    policy = CurationPolicy.from_dict({"aggregation": "majority", "test_fraction": 0.2, "seed": 7})
    freeze = freeze_request(project=project, policy=policy, created_by=lead, name="nightly")
    ImportJob.objects.filter(pk=job.pk).update(status="failed", message="The worker stopped reporting.")
    FreezeRequest.objects.filter(pk=freeze.pk).update(status="failed", error="The worker stopped reporting.")
    annotator, outsider = member(project), member(ProjectFactory(), Role.LEAD)
    api_urls = [f"/api/imports/{job.pk}/retry/", f"/api/freezes/{freeze.pk}/retry/"]
    page_urls = [f"/imports/{job.pk}/retry/", f"/p/{project.slug}/sets/freezing/{freeze.pk}/retry/"]
    for url in api_urls:
        assert APIClient().post(url).status_code in (401, 403)
        assert api_as(annotator).post(url).status_code in (403, 404)
        assert api_as(outsider).post(url).status_code == 404
    for url in page_urls:
        assert Client().post(url).status_code == 302  # to the login page
        for who in (annotator, outsider):
            page = Client()
            page.force_login(who)
            assert page.post(url).status_code in (403, 404)
    assert ImportJob.objects.count() == 1 and FreezeRequest.objects.count() == 1
