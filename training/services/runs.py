"""The life of a run, whatever it trains: queued by a service, started once by a worker, reporting
progress, metrics, log lines and checkpoints, and ending succeeded, failed (with why) or cancelled.

A run is never left "running" by a dead worker:
- the worker's child process killed (out of memory, SIGKILL): Celery's parent process sees the
  child gone and fires task_failure, which fails the run (training/tasks.py);
- the whole worker killed: it stops beating (a heartbeat thread writes every HEARTBEAT seconds,
  through long steps too), and a run silent for TRAINING_STALE_AFTER is failed by the periodic
  reaper and by whoever reads it first (page, API, command);
- a worker restarted under the same node name fails what its predecessor left running at once.
"""
from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotation.services.jobs import Heartbeat as JobHeartbeat

from ..models import ACTIVE, Run, RunLog, RunMetric, RunStatus

TERMINAL = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class RunStateError(Exception):
    """The run is not in a state that allows this."""


def stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "TRAINING_STALE_AFTER_SECONDS", 180))


def worker_name(node: str = "") -> str:
    """`node:pid`, node being the Celery node name (unique per worker, `celery@host` by default)."""
    import os

    return f"{node or 'celery@' + socket.gethostname()}:{os.getpid()}"


def run_start(*, run_id: int, device: str = "", node: str = "") -> Run | None:
    """Claim a queued run for this worker; None when it is not queued any more (cancelled before it
    started, or a redelivered message for a run that already ran): idempotent by status."""
    now = timezone.now()
    claimed = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker_name(node), device=device,
        phase="starting")
    if not claimed:
        return None
    run_log(run_id=run_id, message=f"Started on {worker_name(node)}" + (f" ({device})" if device else "") + ".")
    return Run.objects.select_related("project", "preference_set", "created_by").get(pk=run_id)


def run_heartbeat(*, run_id: int) -> None:
    Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(heartbeat_at=timezone.now())


def run_phase(*, run_id: int, phase: str) -> None:
    Run.objects.filter(pk=run_id).update(phase=phase[:64], heartbeat_at=timezone.now())
    run_log(run_id=run_id, message=phase[:1].upper() + phase[1:] + ".")


def run_progress(*, run_id: int, step: int, total: int, loss: float | None, learning_rate: float | None,
                 pairs_per_s: float | None, eta_seconds: float | None = None, metric: bool = False,
                 values: dict | None = None) -> None:
    """The live numbers on the run's row; a point on its loss chart when `metric`."""
    now = timezone.now()
    Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
        step=step, total_steps=total, loss=loss, throughput=pairs_per_s, eta_seconds=eta_seconds, heartbeat_at=now)
    if metric:
        RunMetric.objects.create(run_id=run_id, step=step, loss=loss, learning_rate=learning_rate,
                                 throughput=pairs_per_s, values=values or {})


def run_log(*, run_id: int, message: str, level: str = "info") -> None:
    RunLog.objects.create(run_id=run_id, message=message[:10000], level=level[:8])


def run_checkpoint(*, run_id: int, step: int, path: str) -> None:
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        run.checkpoints = [c for c in run.checkpoints if c["path"] != path] + [{"step": step, "path": path}]
        run.save(update_fields=["checkpoints"])
    run_log(run_id=run_id, message=f"Checkpoint at step {step}: {path}")


def run_should_stop(*, run_id: int) -> bool:
    return Run.objects.filter(pk=run_id, cancel_requested=True).exists()


def run_cancel(*, run: Run, user=None) -> Run:
    """A queued run is cancelled at once; a running one is asked to stop at its next step."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.status in TERMINAL:
            raise RunStateError(f"The run has {run.status} already.")
        who = f" by {user.username}" if user is not None else ""
        if run.status == RunStatus.QUEUED:
            run.status, run.finished_at, run.phase = RunStatus.CANCELLED, timezone.now(), "cancelled"
        run.cancel_requested = True
        run.save(update_fields=["status", "finished_at", "phase", "cancel_requested"])
    run_log(run_id=run.pk, message=f"Cancel requested{who}.", level="warning")
    return run


def run_cancelled(*, run_id: int) -> None:
    Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
        status=RunStatus.CANCELLED, phase="cancelled", finished_at=timezone.now())


def run_fail(*, run_id: int, reason: str) -> bool:
    """Fail a queued or running run with its reason; True if this call ended it."""
    ended = Run.objects.filter(pk=run_id, status__in=ACTIVE).update(
        status=RunStatus.FAILED, error=reason[:5000], phase="failed", finished_at=timezone.now())
    if ended:
        run_log(run_id=run_id, message=f"Failed: {reason}", level="error")
    return bool(ended)


def run_succeed(*, run_id: int, **fields) -> None:
    Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
        status=RunStatus.SUCCEEDED, phase="done", finished_at=timezone.now(), step=F("total_steps"), eta_seconds=0,
        **fields)
    run_log(run_id=run_id, message="Succeeded.")


def runs_reap_stale(*, now=None) -> list[int]:
    """Fail every running run whose worker has been silent for longer than stale_after()."""
    now = now or timezone.now()
    limit = stale_after()
    ids = list(Run.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=now - limit).values_list("pk", flat=True))
    failed = []
    for pk in ids:
        if run_fail(run_id=pk, reason=f"The worker stopped reporting: no heartbeat for over {limit.total_seconds():.0f} s, "
                                      "so it was killed or lost its connection. Checkpoints kept so far are listed "
                                      "below; start a new run from the last one to continue."):
            failed.append(pk)
    return failed


def runs_fail_orphans(*, node: str) -> list[int]:
    """A worker starting as Celery node `node` fails the runs that node left running: node names
    are unique, so nothing else can still be running them."""
    ids = list(Run.objects.filter(status=RunStatus.RUNNING, worker__startswith=f"{node}:").values_list("pk", flat=True))
    return [pk for pk in ids if run_fail(
        run_id=pk, reason=f"The worker {node} restarted while this run was going (it was killed or crashed).")]


def run_fresh(*, run: Run) -> Run:
    """The run as it stands, with a silent worker noticed now rather than at the next reaper tick."""
    if run.status == RunStatus.RUNNING and run.heartbeat_at and timezone.now() - run.heartbeat_at > stale_after():
        runs_reap_stale()
        run.refresh_from_db()
    return run


# ---------------------------------------------------------------- on the worker


HEARTBEAT_SECONDS = 10


class Heartbeat(JobHeartbeat):
    """Beats every HEARTBEAT_SECONDS from its own thread, so a long step, a slow tokenizer or a
    model load never looks like a dead worker; a killed worker stops beating. The same thread
    every background job kind beats with (annotation/services/jobs.py)."""

    def __init__(self, run_id: int, every: float = HEARTBEAT_SECONDS):
        self.run_id = run_id
        super().__init__(lambda: run_heartbeat(run_id=run_id), every, name=f"heartbeat-run-{run_id}")


def run_cannot_train(*, run_id: int, exc: ImportError) -> None:
    run_fail(run_id=run_id, reason=f"This worker cannot train: {exc}. Install the train extra there "
                                   "(pip install -e '.[train]', with torch first).")


def run_guarded(*, run_id: int, device: str, node: str, body: Callable[[Run], None]) -> Run | None:
    """Start a queued run (once: a run that is not queued is left alone), do `body` while a
    heartbeat thread beats, and fail the run with the reason if anything in it raises."""
    run = run_start(run_id=run_id, device=device, node=node)
    if run is None:
        return None
    with Heartbeat(run_id):
        try:
            body(run)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the run says so and ends
            run_fail(run_id=run_id, reason=f"{type(exc).__name__}: {exc}")
            raise
    run.refresh_from_db()
    return run
