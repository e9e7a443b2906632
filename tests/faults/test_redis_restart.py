"""Redis (broker and cache) killed and started again, empty, while imports and an analytics
computation wait in its queue, one import runs, and more are asked for while it is down: the
pages and the API keep answering, the running import finishes, and every queued job still gets
done (the reaper sends again what the restart lost), with the same web and worker processes.

Its own redis-server on a free port (never the shared one), a real gunicorn web process and a real
Celery worker process, both pointed at it, on this test's PostgreSQL database."""
from __future__ import annotations

import json
import time

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from annotation.services.tokens import token_issue

from annotation.models import ImportJob, Item, Role
from calibration.models import AnalyticsSnapshot
from tests.factories import member

from .services import (
    base_env, database_url, http, jsonl, labelled_project, multipart, private_redis, wait_until,
    web_server, worker_process,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]

TERMINAL = ("succeeded", "failed")


def test_redis_restarted_with_jobs_queued_loses_none_and_pages_keep_rendering(tmp_path, settings, table_lock):
    project = labelled_project()
    lead = member(project, Role.LEAD)
    token = token_issue(user=lead)[1]
    browser = Client()
    browser.force_login(lead)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    media = tmp_path / "media"

    def import_file(name: str, lines: int) -> int:
        rows = [{"prompt": f"{name} question {i}?", "responses": [f"a{i}", f"b{i}"]} for i in range(lines)]
        answer = multipart(f"{base}/api/projects/{project.slug}/imports/", token=token, filename=f"{name}.jsonl",
                           content=jsonl(rows))
        assert answer.status == 202, answer
        return answer.json()["id"]

    def status(job_id: int) -> str:
        return ImportJob.objects.get(pk=job_id).status

    with private_redis() as redis:
        env = base_env(DJANGO_SETTINGS_MODULE="config.settings.test",
                       DATABASE_URL=database_url(connection.settings_dict),
                       REDIS_URL=redis.url, DJANGO_MEDIA_ROOT=str(media), JOBS_HEARTBEAT_SECONDS="0.3",
                       JOBS_STALE_AFTER_SECONDS="3")
        with web_server(env, tmp_path / "web.log") as base, \
                worker_process(env, tmp_path / "worker.log", queue=django_settings.CELERY_TASK_DEFAULT_QUEUE):
            log = tmp_path / "worker.log"
            # The worker (one process) is kept busy by an import that waits on a lock in its write
            # transaction, so what is queued after it stays in Redis.
            lock = table_lock("annotation_response", "SHARE")
            running = import_file("running", 1200)
            wait_until(lambda: status(running) == "running", timeout=40, what="the first import to start", log=log)
            queued = import_file("queued", 50)
            snapshot = http("POST", f"{base}/api/projects/{project.slug}/analytics/refresh/", token=token).json()["id"]
            time.sleep(1)
            assert status(queued) == "queued"
            assert AnalyticsSnapshot.objects.get(pk=snapshot).status == "queued"

            redis.stop()  # killed: what it held is gone
            outage_started = time.monotonic()
            during = {
                "lead page": http("GET", f"{base}/p/{project.slug}/lead/", cookie=cookie).status,
                "analytics page": http("GET", f"{base}/p/{project.slug}/analytics/", cookie=cookie).status,
                "import status": http("GET", f"{base}/imports/{queued}/", cookie=cookie).status,
                "import api": http("GET", f"{base}/api/imports/{queued}/", token=token).status,
                "analytics api": http("GET", f"{base}/api/projects/{project.slug}/analytics/", token=token).status,
            }
            asked_while_down = import_file("asked-while-down", 30)
            during["import upload"] = 202
            refresh = http("POST", f"{base}/api/projects/{project.slug}/analytics/refresh/", token=token)
            during["analytics refresh"] = refresh.status
            assert refresh.json()["id"] == snapshot  # joins the pending one
            seconds_for_all_answers_while_down = round(time.monotonic() - outage_started, 2)
            lock.release()
            wait_until(lambda: status(running) in TERMINAL, timeout=40, what="the running import to end", log=log)

            redis.start()  # same port, empty
            jobs = {"running": running, "queued": queued, "asked-while-down": asked_while_down}
            wait_until(lambda: all(http("GET", f"{base}/api/imports/{pk}/", token=token).json()["status"] in TERMINAL
                                   for pk in jobs.values()), timeout=45, what="every import to end", log=log)
            wait_until(lambda: http("GET", f"{base}/api/projects/{project.slug}/analytics/",
                                    token=token).json()["pending"] is None, timeout=30, what="the computation", log=log)

    outcome = {name: ImportJob.objects.get(pk=pk).status for name, pk in jobs.items()}
    outcome["analytics"] = AnalyticsSnapshot.objects.get(pk=snapshot).status
    counts = {"jobs": len(outcome), "succeeded": sum(s == "succeeded" for s in outcome.values()),
              "failed_with_reason": sum(s == "failed" for s in outcome.values()),
              "lost_or_stuck": sum(s not in TERMINAL for s in outcome.values()), "answers_while_down": during,
              "seconds_for_all_answers_while_down": seconds_for_all_answers_while_down}
    print(f"\n[faults] Redis killed and restarted with jobs queued: {json.dumps(counts)}")
    assert set(during.values()) <= {200, 202}, during
    assert seconds_for_all_answers_while_down < 15, "no request hangs on the broker"
    assert counts["lost_or_stuck"] == 0
    assert outcome == dict.fromkeys(outcome, "succeeded"), outcome
    assert Item.objects.filter(project=project).count() == 6 + 1200 + 50 + 30
