"""End to end with real parts: a real Celery worker *process* (`celery -A config worker -Q <gpu
queue> --concurrency 1`, prefork) on the real Redis broker and the test PostgreSQL database.
A frozen set goes in through the REST API, the worker trains a tiny local backbone, the run
succeeds and its evaluation is stored; a run is cancelled mid-training; and a run whose worker is
killed mid-training (its pool process, then the whole worker) ends failed with its reason, not
running."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from annotation.models import Role
from tests.factories import ProjectFactory, api_as, member
from training.models import Run, RunStatus

from .conftest import learnable_set

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.train]
ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def worker_process(training_root: Path, stale_after: int = 180):
    """`celery -A config worker -Q <this xdist process's gpu queue> --concurrency 1` against this
    test database; yields the Popen (its own process group) and stops it afterwards."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "TRAINING_ROOT": str(training_root),
        "TRAINING_STALE_AFTER_SECONDS": str(stale_after),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
    }
    from config.celery import app

    app.conf.broker_url = django_settings.CELERY_BROKER_URL
    with app.connection_for_write() as conn:  # nothing left over from an earlier run on this queue
        conn.default_channel.queue_purge(django_settings.TRAINING_QUEUE)
    log = open(training_root / "worker.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", django_settings.TRAINING_QUEUE,
         "--concurrency", "1", "--pool", "prefork", "-n", f"e2e-{uuid.uuid4().hex[:8]}@%h", "--loglevel", "INFO",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()


def wait_for(predicate, *, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()[-4000:]}")


def run_of(run_id: int) -> Run:
    return Run.objects.get(pk=run_id)


@pytest.fixture
def setup(tiny_backbone, tmp_path, settings):
    settings.TRAINING_ROOT = tmp_path
    project = ProjectFactory()
    preference_set = learnable_set(project, items=24)
    engineer = member(project, Role.ENGINEER)
    return project, preference_set, api_as(engineer), tmp_path


def start(api, project, preference_set, **config) -> int:
    response = api.post(f"/api/projects/{project.slug}/runs/", {"preference_set": preference_set.pk,
                                                                 "config": config}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_the_worker_trains_a_queued_run_to_success_and_cancels_a_running_one(setup, tiny_backbone):
    project, preference_set, api, root = setup
    with worker_process(root):
        run_id = start(api, project, preference_set, base_model=tiny_backbone, epochs=3, batch_size=4,
                       learning_rate=3e-3)
        log = root / "worker.log"
        wait_for(lambda: run_of(run_id).status in ("succeeded", "failed"), timeout=240, what="the run to end", log=log)
        run = api.get(f"/api/runs/{run_id}/").json()
        assert run["status"] == "succeeded", run["error"]
        assert run["percent"] == 100 and run["step"] == run["total_steps"] > 0
        model = api.get(f"/api/reward-models/{run['reward_model']}/").json()
        assert model["evaluation"]["pairs"] == preference_set.counts["by_split"]["test"]
        assert {"domain", "tag", "dimension"} <= set(model["evaluation"]["categories"])
        assert Path(model["path"], "config.json").is_file()
        assert api.get(f"/api/runs/{run_id}/metrics/").json()

        long_run = start(api, project, preference_set, base_model=tiny_backbone, max_steps=100000, batch_size=2)
        wait_for(lambda: run_of(long_run).step >= 3, timeout=120, what="the long run to be training", log=log)
        assert api.post(f"/api/runs/{long_run}/cancel/").status_code == 200
        wait_for(lambda: run_of(long_run).status == RunStatus.CANCELLED, timeout=60, what="the cancel", log=log)
        assert run_of(long_run).step < 100000 and run_of(long_run).reward_model is None


def test_a_run_whose_worker_is_killed_mid_training_ends_failed_not_running(setup, tiny_backbone, settings):
    project, preference_set, api, root = setup
    log = root / "worker.log"
    with worker_process(root) as worker:
        # 1. The pool process that trains is killed (as the OOM killer would): the worker's parent
        #    sees it gone and fails the run at once, with the reason.
        first = start(api, project, preference_set, base_model=tiny_backbone, max_steps=100000, batch_size=2)
        wait_for(lambda: run_of(first).step >= 3, timeout=120, what="the first run to be training", log=log)
        child_pid = int(run_of(first).worker.rsplit(":", 1)[1])
        assert child_pid != worker.pid
        os.kill(child_pid, signal.SIGKILL)
        wait_for(lambda: run_of(first).status == RunStatus.FAILED, timeout=60, what="the first run to fail", log=log)
        assert "died" in run_of(first).error and "WorkerLostError" in run_of(first).error

        # 2. The whole worker is killed: nobody is left to say so. Its run stops beating and the
        #    next read (API, page, reaper) fails it once it has been silent too long.
        second = start(api, project, preference_set, base_model=tiny_backbone, max_steps=100000, batch_size=2)
        wait_for(lambda: run_of(second).step >= 3, timeout=120, what="the second run to be training", log=log)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    settings.TRAINING_STALE_AFTER_SECONDS = 3
    assert run_of(second).status == RunStatus.RUNNING  # as the killed worker left it
    run = wait_for(lambda: (r := api.get(f"/api/runs/{second}/").json())["status"] == "failed" and r,
                   timeout=30, what="the silent run to be failed", log=log)
    assert "no heartbeat" in run["error"] and run["finished_at"]
