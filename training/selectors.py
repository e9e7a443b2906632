"""Reading runs: lists, the loss chart's points, log lines."""
from __future__ import annotations

from annotation.models import Project

from .models import Run, RunLog, RunMetric
from .services.runs import runs_reap_stale


def runs_of(*, project: Project):
    runs_reap_stale()  # a dead worker's run shows as failed, not running, even with no beat scheduler
    return Run.objects.filter(project=project).select_related(
        "project", "preference_set", "reward_model", "created_by").order_by("-created_at")


def run_get(*, project: Project, pk: int) -> Run | None:
    return Run.objects.filter(project=project, pk=pk).select_related(
        "project", "preference_set", "reward_model", "created_by").first()


def run_metrics(*, run: Run, after: int = -1) -> list[dict]:
    return list(RunMetric.objects.filter(run=run, step__gt=after).order_by("step", "id").values(
        "step", "loss", "learning_rate", "throughput", "values"))


def run_logs(*, run: Run, limit: int = 500) -> list[dict]:
    rows = RunLog.objects.filter(run=run).order_by("-id").values("at", "level", "message")[:limit]
    return list(reversed(rows))


def run_for_reward_model(*, reward_model) -> Run | None:
    return Run.objects.filter(reward_model=reward_model).first()


def run_by_id(*, pk: int) -> Run | None:
    """Any project's run; the caller checks the reader's role in run.project."""
    return Run.objects.select_related("project", "preference_set", "reward_model", "created_by").filter(pk=pk).first()
