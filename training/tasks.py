"""Celery tasks: thin wrappers that call one service. Training runs go to the `gpu` queue."""
from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready

from annotation.services.jobs import task_failed_register

from .services.item_scores import item_scoring_run
from .services.redteam import attempt_score
from .services.judges import judge_job_run
from .services.judge_runs import generative_judge_run_execute
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


@shared_task(bind=True, acks_late=True, name="training.tasks.train_generative_judge")
def train_generative_judge(self, run_id: int) -> int | None:
    run = generative_judge_run_execute(run_id=run_id, node=self.request.hostname or "")
    return (run.summary or {}).get("judge_id") if run is not None else None


@shared_task(name="training.tasks.score_redteam_attempt")
def score_redteam_attempt(attempt_id: int) -> int:
    return attempt_score(attempt_id=attempt_id).pk


@shared_task(acks_late=True, name="training.tasks.score_items")
def score_items(scoring_id: int) -> int:
    return item_scoring_run(scoring_id=scoring_id).pk


@shared_task(acks_late=True, name="training.tasks.run_judge_job")
def run_judge_job(job_id: int) -> int:
    return judge_job_run(job_id=job_id).pk


@shared_task(name="training.tasks.reap_stale_runs")
def reap_stale_runs() -> list[int]:
    return runs_reap_stale()


def _fail_run(run_id: int, exception: BaseException | None) -> None:
    """A run's task failed: usually run_guarded has failed the run with its reason already (the
    first reason is kept); when the pool process running it was killed, this is the only word."""
    run_fail(run_id=run_id, reason=f"The worker process died mid-run ({type(exception).__name__}: {exception}).")


# The one task_failure hook (annotation/tasks.py) fails runs through this, like every job kind.
for _task in (train_reward_model, train_policy, train_generative_judge):
    task_failed_register(_task.name, _fail_run)


@worker_ready.connect
def fail_runs_left_by_a_previous_life(sender=None, **kwargs):
    node = getattr(sender, "hostname", "") if sender is not None else ""
    if node:
        runs_fail_orphans(node=node)
