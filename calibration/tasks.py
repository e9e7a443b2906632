"""Celery tasks: thin wrappers that call one service."""
from __future__ import annotations

from celery import shared_task

from .services.analytics import snapshot_fail, snapshot_run
from .services.queue import hidden_answers_score_missing


@shared_task
def score_missing_hidden_answers() -> int:
    return hidden_answers_score_missing()


@shared_task(acks_late=True)
def compute_analytics(snapshot_id: int) -> int | None:
    try:
        snapshot = snapshot_run(snapshot_id=snapshot_id)
    except Exception as exc:  # snapshot_run has already recorded the reason; make sure of it
        snapshot_fail(snapshot_id=snapshot_id, reason=f"{type(exc).__name__}: {exc}")
        raise
    return snapshot.duration_ms if snapshot else None
