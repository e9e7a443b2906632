"""Celery tasks: thin wrappers that load ids and call one service."""
from __future__ import annotations

from celery import shared_task

from .services.imports import import_job_run
from .services.routing import leases_expire


@shared_task(acks_late=True)
def run_import(job_id: int) -> str:
    return import_job_run(job_id=job_id).status


@shared_task
def expire_stale_leases() -> int:
    return leases_expire()
