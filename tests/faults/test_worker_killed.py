"""A real Celery worker process SIGKILLed in the middle of an import, a freeze and an analytics
computation: each job ends failed with its reason (nobody is left to say so but the reaper, here
the check a read of the job makes), never stays "running", nothing half-done is kept, and the retry
(API or page) does the work on a new worker.

"In the middle" is made certain, not a matter of timing: the test holds a table lock the job needs
(through its own PostgreSQL connection), so the worker has claimed the job and is beating when it
is killed; in the import's and the freeze's case it is inside their one write transaction."""
from __future__ import annotations

import os
import signal

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from annotation.models import ImportJob, Item, Role
from calibration.models import AnalyticsSnapshot
from rewards.models import FreezeRequest, PreferenceSet
from tests.factories import ProjectFactory, api_as, member

from .services import TableLock, base_env, database_url, jsonl, labelled_project, wait_until, worker_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]

HEARTBEAT = "0.3"  # seconds, on the worker
STALE = 2  # seconds, where the job is read


@pytest.fixture
def env(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    from config.celery import app

    app.conf.broker_url = settings.CELERY_BROKER_URL
    with app.connection_for_write() as conn:  # nothing left over from an earlier run on this queue
        conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)
    return base_env(
        DJANGO_SETTINGS_MODULE="config.settings.test", DATABASE_URL=database_url(connection.settings_dict),
        REDIS_URL=settings.REDIS_URL, DJANGO_MEDIA_ROOT=str(settings.MEDIA_ROOT), JOBS_HEARTBEAT_SECONDS=HEARTBEAT)


def kill_mid_job(*, env, log, model, job_id_of, lock: TableLock) -> int:
    """Start a worker, queue the job (job_id_of()), wait until the worker has claimed it and beaten
    at least once, SIGKILL the worker's whole process group, then let go of the lock."""
    with worker_process(env, log, queue=django_settings.CELERY_TASK_DEFAULT_QUEUE) as worker:
        job_id = job_id_of()
        wait_until(lambda: (job := model.objects.get(pk=job_id)).status == "running"
                   and job.heartbeat_at > job.started_at, timeout=40, what="the worker to be beating on the job",
                   log=log)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    lock.release()
    assert model.objects.get(pk=job_id).status == "running"  # as the killed worker left it
    return job_id


def test_worker_killed_mid_import_fails_it_with_its_reason_and_the_retry_imports_it(env, tmp_path, settings,
                                                                                    table_lock):
    project = ProjectFactory()
    lead = api_as(member(project, Role.LEAD))
    lines = 2500  # the first 1000 are written (uncommitted) when the second insert waits on the lock
    rows = [{"prompt": f"Question {i}?", "responses": [f"a{i}", f"b{i}"]} for i in range(lines)]
    log = tmp_path / "worker.log"

    def queue() -> int:
        from django.core.files.uploadedfile import SimpleUploadedFile

        answer = lead.post(f"/api/projects/{project.slug}/imports/",
                           {"file": SimpleUploadedFile("big.jsonl", jsonl(rows))}, format="multipart")
        assert answer.status_code == 202, answer.content
        return answer.json()["id"]

    job_id = kill_mid_job(env=env, log=log, model=ImportJob, job_id_of=queue,
                          lock=table_lock("annotation_response", "SHARE"))
    settings.JOBS_STALE_AFTER_SECONDS = STALE
    failed = wait_until(lambda: (j := lead.get(f"/api/imports/{job_id}/").json())["status"] != "running" and j,
                        timeout=20, what="the silent import to be failed")
    assert failed["status"] == "failed", failed
    assert "no heartbeat" in failed["message"] and "Nothing was imported" in failed["message"]
    assert Item.objects.filter(project=project).count() == 0, "the killed write transaction was rolled back"

    with worker_process(env, log, queue=django_settings.CELERY_TASK_DEFAULT_QUEUE):
        retried = lead.post(f"/api/imports/{job_id}/retry/")
        assert retried.status_code == 202, retried.content
        again = retried.json()["id"]
        done = wait_until(lambda: (j := lead.get(f"/api/imports/{again}/").json())["status"] in ("succeeded", "failed")
                          and j, timeout=60, what="the retried import", log=log)
    assert done["status"] == "succeeded", done
    assert Item.objects.filter(project=project).count() == lines
    assert lead.post(f"/api/imports/{again}/retry/").status_code == 409  # only a failed job is retried
    print(f"\n[faults] import killed mid-write: 1 job, stuck running 0, failed with reason 1, "
          f"items kept from the killed attempt 0, retry imported {done['items_created']} of {lines}")


def test_pool_process_killed_mid_import_fails_it_at_once_and_the_same_worker_retries(env, tmp_path, table_lock):
    """Only the process running the task is killed (as the out-of-memory killer would): the worker's
    parent process sees it gone and fails the job there and then, with no wait for the reaper."""
    import psutil

    project = ProjectFactory()
    lead = api_as(member(project, Role.LEAD))
    rows = [{"prompt": f"Question {i}?", "responses": [f"a{i}", f"b{i}"]} for i in range(1500)]
    log = tmp_path / "worker.log"
    lock = table_lock("annotation_response", "SHARE")
    with worker_process(env, log, queue=django_settings.CELERY_TASK_DEFAULT_QUEUE) as worker:
        from django.core.files.uploadedfile import SimpleUploadedFile

        job_id = lead.post(f"/api/projects/{project.slug}/imports/",
                           {"file": SimpleUploadedFile("big.jsonl", jsonl(rows))}, format="multipart").json()["id"]
        wait_until(lambda: ImportJob.objects.get(pk=job_id).status == "running", timeout=40,
                   what="the import to start", log=log)
        (pool_process,) = psutil.Process(worker.pid).children()
        os.kill(pool_process.pid, signal.SIGKILL)
        lock.release()
        failed = wait_until(lambda: (j := ImportJob.objects.get(pk=job_id)).status != "running" and j, timeout=30,
                            what="the parent to fail the import", log=log)
        assert failed.status == "failed" and "worker process died" in failed.message, failed.message
        assert "WorkerLostError" in failed.message and "Nothing was imported" in failed.message
        assert Item.objects.filter(project=project).count() == 0
        again = lead.post(f"/api/imports/{job_id}/retry/").json()["id"]
        wait_until(lambda: ImportJob.objects.get(pk=again).status in ("succeeded", "failed"), timeout=60,
                   what="the retried import", log=log)
    assert ImportJob.objects.get(pk=again).status == "succeeded"
    assert Item.objects.filter(project=project).count() == len(rows)
    print(f"\n[faults] pool process killed mid-import: 1 job, stuck running 0, failed with reason 1 (at once, "
          f"by the worker's parent), retry on the same worker imported {len(rows)} of {len(rows)}")


def _labelled_with_lead():
    project = labelled_project()
    lead_user = member(project, Role.LEAD)
    return project, lead_user, api_as(lead_user)


def _queued(client, url: str, body=None) -> int:
    """POST that queues a job (202); the job's id."""
    answer = client.post(url, body, format="json")
    assert answer.status_code == 202, answer.content
    return answer.json()["id"]


def test_worker_killed_mid_freeze_fails_it_with_its_reason_and_the_page_retry_freezes(env, tmp_path, settings,
                                                                                     table_lock):
    project, lead_user, lead = _labelled_with_lead()
    log = tmp_path / "worker.log"
    freeze_id = kill_mid_job(env=env, log=log, model=FreezeRequest, job_id_of=lambda: _queued(
        lead, f"/api/projects/{project.slug}/sets/", {"name": "v1", "policy": {"aggregation": "majority"}}),
                             lock=table_lock("rewards_setpair", "SHARE"))
    settings.JOBS_STALE_AFTER_SECONDS = STALE
    failed = wait_until(lambda: (f := lead.get(f"/api/freezes/{freeze_id}/").json())["status"] != "running" and f,
                        timeout=20, what="the silent freeze to be failed")
    assert failed["status"] == "failed" and "no heartbeat" in failed["error"], failed
    assert not PreferenceSet.objects.filter(project=project).exists(), "the killed freeze kept nothing"

    page = Client()
    page.force_login(lead_user)
    shown = page.get(f"/p/{project.slug}/sets/freezing/{freeze_id}/").content.decode()
    assert "Nothing was frozen" in shown and "Retry with the same policy" in shown
    with worker_process(env, log, queue=django_settings.CELERY_TASK_DEFAULT_QUEUE):
        answer = page.post(f"/p/{project.slug}/sets/freezing/{freeze_id}/retry/")
        assert answer.status_code == 302
        again = FreezeRequest.objects.latest("pk")
        assert again.pk != freeze_id and answer["Location"].endswith(f"/sets/freezing/{again.pk}/")
        wait_until(lambda: FreezeRequest.objects.get(pk=again.pk).status in ("succeeded", "failed"), timeout=60,
                   what="the retried freeze", log=log)
    again.refresh_from_db()
    assert again.status == "succeeded", again.error
    assert (again.policy, again.name) == (FreezeRequest.objects.get(pk=freeze_id).policy, "v1")
    assert PreferenceSet.objects.filter(project=project).count() == 1
    print(f"\n[faults] freeze killed mid-write: 1 job, stuck running 0, failed with reason 1, sets kept from the "
          f"killed attempt 0, retry froze set v{again.preference_set.version} "
          f"({again.preference_set.counts['pairs']} pairs)")


def test_worker_killed_mid_analytics_fails_it_with_its_reason_and_the_retry_computes(env, tmp_path, settings,
                                                                                     table_lock):
    project, lead_user, lead = _labelled_with_lead()
    log = tmp_path / "worker.log"
    # The computation reads the project's analytics settings early on: it waits there.
    snapshot_id = kill_mid_job(env=env, log=log, model=AnalyticsSnapshot, job_id_of=lambda: _queued(
        lead, f"/api/projects/{project.slug}/analytics/refresh/"),
                               lock=table_lock("calibration_analyticspolicy", "ACCESS EXCLUSIVE"))
    settings.JOBS_STALE_AFTER_SECONDS = STALE
    state = wait_until(lambda: (s := lead.get(f"/api/projects/{project.slug}/analytics/").json())["pending"] is None
                       and s, timeout=20, what="the silent computation to be failed")
    assert state["failed"]["id"] == snapshot_id and "no heartbeat" in state["failed"]["error"], state
    assert state["payload"] is None

    page = Client()
    page.force_login(lead_user)
    shown = page.get(f"/p/{project.slug}/analytics/").content.decode()
    assert "The computation failed" in shown and ">Retry</button>" in shown
    with worker_process(env, log, queue=django_settings.CELERY_TASK_DEFAULT_QUEUE):
        answer = page.post(f"/p/{project.slug}/analytics/refresh/", HTTP_HX_REQUEST="true")
        assert answer.status_code == 200
        again = AnalyticsSnapshot.objects.latest("pk")
        assert again.pk != snapshot_id
        wait_until(lambda: AnalyticsSnapshot.objects.get(pk=again.pk).status in ("succeeded", "failed"), timeout=60,
                   what="the retried computation", log=log)
    again.refresh_from_db()
    assert again.status == "succeeded", again.error
    assert lead.get(f"/api/projects/{project.slug}/analytics/").json()["payload"]["counts"]["judgments"] == 6
    print(f"\n[faults] analytics killed mid-computation: 1 job, stuck running 0, failed with reason 1, "
          f"retry computed {again.judgments_seen} judgments in {again.duration_ms} ms")
