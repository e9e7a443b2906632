"""Celery tasks: thin wrappers that call one service."""
from __future__ import annotations

from celery import shared_task

from .services.sets import freeze_fail, freeze_run


@shared_task(acks_late=True)
def freeze_set(request_id: int) -> int | None:
    try:
        request = freeze_run(request_id=request_id)
    except Exception as exc:  # freeze_run has recorded the reason already; make sure of it
        freeze_fail(request_id=request_id, reason=f"{type(exc).__name__}: {exc}")
        raise
    return request.preference_set_id
