"""Celery tasks: thin wrappers that call one service. Training runs go to the `gpu` queue."""
from __future__ import annotations

from celery import shared_task
from celery.signals import task_failure, worker_ready

from .services.reward_runs import reward_run_execute
from .services.rl_runs import rl_run_execute
from .services.runs import run_fail, runs_fail_orphans, runs_reap_stale


@shared_task(bind=True, acks_late=True, name="training.tasks.train_reward_model")
def train_reward_model(self, run_id: int) -> int | None:
    run = reward_run_execute(run_id=run_id, node=self.request.hostname or "")
    return run.reward_model_id if run is not None else None


@shared_task(bind=True, acks_late=True, name="training.tasks.train_policy")
def train_policy(self, run_id: int) -> int | None:
    run = rl_run_execute(run_id=run_id, node=self.request.hostname or "")
    return run.pk if run is not None else None


@shared_task(name="training.tasks.reap_stale_runs")
def reap_stale_runs() -> list[int]:
    return runs_reap_stale()


@task_failure.connect
def fail_run_when_its_task_fails(sender=None, exception=None, args=None, **kwargs):
    """Also fires in the worker's parent process when the child that ran the task was killed
    (WorkerLostError, e.g. out of memory): the run is failed there, with the reason."""
    if sender is None or sender.name not in (train_reward_model.name, train_policy.name) or not args:
        return
    run_fail(run_id=int(args[0]), reason=f"The worker process died mid-run ({type(exception).__name__}: {exception}).")


@worker_ready.connect
def fail_runs_left_by_a_previous_life(sender=None, **kwargs):
    node = getattr(sender, "hostname", "") if sender is not None else ""
    if node:
        runs_fail_orphans(node=node)
