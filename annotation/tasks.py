"""Celery tasks: thin wrappers that load ids and call one service."""
from __future__ import annotations

from celery import shared_task
from celery.signals import task_failure

from .services.imports import import_job_run
from .services.jobs import jobs_reap, task_failed
from .services.routing import leases_expire


@shared_task(acks_late=True)
def run_import(job_id: int) -> str:
    return import_job_run(job_id=job_id).status


@shared_task
def expire_stale_leases() -> int:
    return leases_expire()


@shared_task
def reap_stale_jobs() -> dict:
    """Imports, freezes and analytics computations (every kind registered in services/jobs.py)."""
    return jobs_reap()


@task_failure.connect
def fail_work_when_its_task_fails(sender=None, exception=None, args=None, **kwargs):
    """For every task kind (jobs and runs alike, services/jobs.py task_failed). Also fires in the
    worker's parent process when the child that ran the task was killed (WorkerLostError, e.g. out
    of memory): the work is failed there, with the reason. Work whose code raised was failed with
    that reason already; the first reason is kept."""
    if sender is not None and args:
        task_failed(getattr(sender, "name", ""), int(args[0]), exception)
