"""Celery tasks: thin wrappers that call one service. A freeze that raises is failed with its reason by
its job lifecycle (annotation.services.jobs: job_guarded in the task, the task_failure hook when the
worker dies), the same path as every job kind."""
from __future__ import annotations

from celery import shared_task

from .services.sets import freeze_run


@shared_task(acks_late=True)
def freeze_set(request_id: int) -> int | None:
    return freeze_run(request_id=request_id).preference_set_id
