"""Celery tasks: thin wrappers that call one service. An analytics computation that raises is failed
with its reason by its job lifecycle (annotation.services.jobs), the same path as every job kind."""
from __future__ import annotations

from celery import shared_task

from .services.analytics import snapshot_run
from .services.queue import hidden_answers_score_missing


@shared_task
def score_missing_hidden_answers() -> int:
    return hidden_answers_score_missing()


@shared_task(acks_late=True)
def compute_analytics(snapshot_id: int) -> int | None:
    snapshot = snapshot_run(snapshot_id=snapshot_id)
    return snapshot.duration_ms if snapshot else None
