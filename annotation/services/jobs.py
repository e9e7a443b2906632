"""One lifecycle for every background job kind (imports here; freezes in rewards, analytics
snapshots in calibration register theirs; training runs share the heartbeat): queued by a service
and sent once its row commits, claimed once by a worker, beating while it works, and ending
succeeded or failed with the reason, never left "queued" or "running" by a fault.

Who notices what:
- the job's code raises: the worker fails the job with the exception (job_guarded);
- the worker's pool process dies (out of memory, SIGKILL): Celery's parent process fires
  task_failure, which fails the job at once (annotation/tasks.py);
- the whole worker dies, or the filesystem broker of `make run` drops the message of the job it
  was doing: its beats stop, and a running job silent for JOBS_STALE_AFTER_SECONDS is failed by
  the periodic reaper and by whoever reads it first (page, API);
- the broker loses a queued message (Redis restarted without persistence) or is down when the job
  is queued: a queued job nobody took is sent again after JOBS_STALE_AFTER_SECONDS (claiming is by
  status, so a duplicate message does nothing), and failed after JOBS_QUEUED_GIVE_UP_SECONDS.
A failed job is retried by queueing a new one from the same input (a page button and the API).

Lower apps never import higher ones, so this module knows no job kind but the ones registered.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection, models, transaction
from django.db.models import Q
from django.utils import timezone

from ..models import ImportStatus

log = logging.getLogger(__name__)

# Imports, freezes and analytics snapshots share these four states.
JobStatus = ImportStatus
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
T = TypeVar("T")


@dataclass(frozen=True)
class JobKind:
    """What the lifecycle needs to know about one kind of job. Its model has `status`,
    `heartbeat_at`, `started_at`, `finished_at`, the field named `created_field` and the text
    field named `reason_field`."""

    name: str  # as people read it: "import", "freeze", "analytics computation"
    model: type[models.Model]
    task: str  # the Celery task that does it, for the task_failure hook
    send: Callable[[int], object]  # sends the job's message to its queue
    created_field: str = "created_at"
    reason_field: str = "error"
    nothing_done: str = ""  # what a failure leaves behind, in words, appended to the reason
    on_fail: tuple[tuple[str, object], ...] = ()  # further fields set when it fails


_KINDS: dict[str, JobKind] = {}


def job_kind_register(kind: JobKind) -> JobKind:
    _KINDS[kind.name] = kind
    return kind


def job_kinds() -> list[JobKind]:
    return list(_KINDS.values())


def job_kind_for_task(task_name: str) -> JobKind | None:
    return next((kind for kind in _KINDS.values() if kind.task == task_name), None)


# What fails the work behind a Celery task whose task failed, by task name: every job kind's task,
# and those a higher app registers (training's runs). One task_failure hook (annotation/tasks.py)
# calls them, with the id the task was given and the exception.
TaskFailed = Callable[[int, BaseException | None], object]
_task_failed: dict[str, TaskFailed] = {}


def task_failed_register(task_name: str, fail: TaskFailed) -> None:
    _task_failed[task_name] = fail


def task_failed(task_name: str, object_id: int, exception: BaseException | None) -> None:
    """The one place a failed task's work is failed with its reason (also when the pool process
    running it was killed, from the worker's parent process)."""
    kind = job_kind_for_task(task_name)
    if kind is not None:
        job_task_failed(kind, object_id, exception)
    elif task_name in _task_failed:
        _task_failed[task_name](object_id, exception)


def stale_after() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "JOBS_STALE_AFTER_SECONDS", 120)))


def heartbeat_every() -> float:
    return float(getattr(settings, "JOBS_HEARTBEAT_SECONDS", 10))


def queued_give_up() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "JOBS_QUEUED_GIVE_UP_SECONDS", 1800)))


# ---------------------------------------------------------------- queueing


def job_send(kind: JobKind, job_id: int) -> bool:
    """Send the job's message now. A broker that is down is logged, not raised: the request that
    queued the job still answers, the job stays queued, and the reaper sends it again."""
    try:
        kind.send(job_id)
    except Exception as exc:  # noqa: BLE001 - kombu, redis and socket errors all mean "not sent"
        log.warning("could not send %s %s to the broker (%s: %s); it stays queued and is sent again later",
                    kind.name, job_id, type(exc).__name__, exc)
        return False
    return True


def job_enqueue(kind: JobKind, job_id: int) -> None:
    """Send once the row commits, so a worker never looks for a job that is not there yet."""
    transaction.on_commit(lambda: job_send(kind, job_id))


# ---------------------------------------------------------------- on the worker


def _beat_key(kind: JobKind, job_id: int) -> str:
    return f"job-beat:{kind.name.replace(' ', '-')}:{job_id}"


def job_claim(kind: JobKind, job_id: int, **fields) -> bool:
    """Queued -> running for this worker; False when it is not queued any more (a redelivered or
    duplicate message, a job failed meanwhile): idempotent by status."""
    now = timezone.now()
    return bool(kind.model.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, **fields))


def job_beat(kind: JobKind, job_id: int) -> None:
    """A sign of life, written twice. The row is what the reaper reads; the cache copy is there
    because an import writes all its rows in one transaction, and on SQLite that transaction holds
    the database's only write lock until it commits, so the row cannot be updated meanwhile (on
    PostgreSQL it can: this thread has its own connection and the row is not in that transaction).
    Either copy failing (Redis down, SQLite locked) is not the job failing."""
    try:
        cache.set(_beat_key(kind, job_id), time.time(), timeout=24 * 3600)
    except Exception:  # noqa: BLE001 - the cache is a second channel; the row may still get through
        log.debug("heartbeat of %s %s not cached", kind.name, job_id, exc_info=True)
    try:
        kind.model.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(heartbeat_at=timezone.now())
    except DatabaseError:
        log.debug("heartbeat of %s %s not stored", kind.name, job_id, exc_info=True)


class Heartbeat:
    """Calls `beat` every `every` seconds from its own thread, so a long step, a slow query or a
    model load never looks like a dead worker; a killed worker stops beating."""

    def __init__(self, beat: Callable[[], None], every: float, name: str = "heartbeat"):
        self.beat, self.every = beat, every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop.wait(self.every):
                try:
                    self.beat()
                except Exception:  # noqa: BLE001 - one missed beat is not a reason to stop beating
                    log.warning("%s: a beat failed", self.thread.name, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)


def job_guarded(kind: JobKind, job_id: int, body: Callable[[], T], **claim_fields) -> T | None:
    """Claim a queued job (once: anything else is left alone, or failed if its worker is gone),
    do `body` while a heartbeat thread beats, and fail the job with the reason if `body` raises."""
    if not job_claim(kind, job_id, **claim_fields):
        job = kind.model.objects.filter(pk=job_id).first()
        if job is not None:
            job_fresh(kind, job)  # redelivered after its worker died: fail it now if it went silent
        return None
    with Heartbeat(lambda: job_beat(kind, job_id), every=heartbeat_every(), name=f"heartbeat-{kind.name}-{job_id}"):
        try:
            return body()
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the job says so and ends
            job_fail(kind, job_id, f"{type(exc).__name__}: {exc}")
            raise


def job_fail(kind: JobKind, job_id: int, reason: str) -> bool:
    """Fail a queued or running job with its reason; True if this call ended it (the first reason
    given is the one kept)."""
    if kind.nothing_done and kind.nothing_done not in reason:
        reason = f"{reason.rstrip()} {kind.nothing_done}"
    return bool(kind.model.objects.filter(pk=job_id, status__in=ACTIVE).update(
        status=JobStatus.FAILED, finished_at=timezone.now(), **{kind.reason_field: reason[:5000]},
        **dict(kind.on_fail)))


def job_task_failed(kind: JobKind, job_id: int, exception: BaseException | None) -> bool:
    """The job's Celery task failed. Usually the job has said why already (job_guarded) and this
    does nothing; when the pool process running it was killed, only the parent process is left
    to say so."""
    what = f"{type(exception).__name__}: {exception}" if exception is not None else "no reason given"
    if type(exception).__name__ == "WorkerLostError":
        reason = f"The worker process died during this {kind.name} ({what})."
    else:
        reason = f"The worker could not do this {kind.name} ({what})."
    try:
        return job_fail(kind, job_id, reason)
    except DatabaseError:  # the database is what failed: the reaper settles the job later
        log.warning("could not fail %s %s after its task failed", kind.name, job_id, exc_info=True)
        return False


# ---------------------------------------------------------------- the reaper


def _cached_beat(kind: JobKind, job_id: int) -> datetime | None:
    try:
        value = cache.get(_beat_key(kind, job_id))
    except Exception:  # noqa: BLE001 - no cache, no second opinion: the row decides
        return None
    return datetime.fromtimestamp(value, tz=timezone.get_current_timezone()) if value else None


def _settle(kind: JobKind, *, pk: int, status: str, heartbeat_at, started_at, created_at, now: datetime) -> str:
    """What a look at one active job decides: "" (alive, or waiting its turn), "resent", "failed"."""
    limit = stale_after()
    if status == JobStatus.RUNNING:
        last = max(t for t in (heartbeat_at, started_at, created_at, _cached_beat(kind, pk)) if t is not None)
        if now - last <= limit:
            return ""
        reason = (f"The worker stopped reporting: no heartbeat for over {limit.total_seconds():.0f} s, so it was "
                  "killed or lost its connection.")
        return "failed" if job_fail(kind, pk, reason) else ""
    give_up = queued_give_up()
    if now - created_at > give_up:
        reason = (f"No worker finished it within {give_up.total_seconds() / 60:.0f} minutes of its request "
                  "(none running, or the queue lost it).")
        return "failed" if job_fail(kind, pk, reason) else ""
    cutoff = now - limit
    # Nobody took it in a while: the broker may have lost the message (or never got it). Send it
    # again; the conditional update lets one caller do so when several look at once.
    resend = kind.model.objects.filter(pk=pk, status=JobStatus.QUEUED).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, **{f"{kind.created_field}__lt": cutoff}))
    if resend.update(heartbeat_at=now):
        log.warning("%s %s was not taken by a worker within %s; sending it again", kind.name, pk, limit)
        job_send(kind, pk)
        return "resent"
    return ""


def job_fresh(kind: JobKind, job: models.Model) -> models.Model:
    """The job as it stands, with a dead worker or a lost message noticed now rather than at the
    next reaper tick (pages and the API call this when they read a job)."""
    if job.status in ACTIVE and _settle(
        kind, pk=job.pk, status=job.status, heartbeat_at=job.heartbeat_at, started_at=job.started_at,
        created_at=getattr(job, kind.created_field), now=timezone.now(),
    ):
        job.refresh_from_db()
    return job


def jobs_reap(*, kinds: list[JobKind] | None = None, now: datetime | None = None) -> dict[str, dict[str, list[int]]]:
    """Fail every running job gone silent and every queued one nobody took for too long; send
    again the queued ones whose message may be lost. Returns {kind: {"failed": [...], "resent": [...]}}."""
    now = now or timezone.now()
    cutoff = now - stale_after()
    done: dict[str, dict[str, list[int]]] = {}
    for kind in kinds if kinds is not None else job_kinds():
        candidates = kind.model.objects.filter(status__in=ACTIVE).filter(
            Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, **{f"{kind.created_field}__lt": cutoff})
        ).values_list("pk", "status", "heartbeat_at", "started_at", kind.created_field)
        outcome: dict[str, list[int]] = {"failed": [], "resent": []}
        for pk, status, heartbeat_at, started_at, created_at in candidates:
            verdict = _settle(kind, pk=pk, status=status, heartbeat_at=heartbeat_at, started_at=started_at,
                              created_at=created_at, now=now)
            if verdict:
                outcome[verdict].append(pk)
        done[kind.name] = outcome
    return done


class JobStateError(Exception):
    """The job is not in a state that allows this (only a failed job is retried)."""


def job_retryable(job: models.Model) -> None:
    if job.status != JobStatus.FAILED:
        raise JobStateError(f"Only a failed job is retried; this one is {job.status}.")
