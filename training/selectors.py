"""Reading runs: lists, the charts' points, log lines; a policy run's alerts, suite and feedback."""
from __future__ import annotations

from annotation.models import Project

from .models import (
    FeedbackBatch, Judge, JudgeJob, RedTeamAccess, RedTeamAttempt, RedTeamHack, Run, RunAlert, RunLog, RunMetric, RunSample,
    SuiteResult,
)
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


# ---------------------------------------------------------------- policy runs (GRPO, PPO)


def run_alerts(*, run: Run) -> list[dict]:
    """The monitors' alerts, with the labelling batches made from each."""
    batches: dict[int, list[int]] = {}
    for alert_id, batch_id in FeedbackBatch.objects.filter(run=run, alert__isnull=False).values_list("alert_id", "id"):
        batches.setdefault(alert_id, []).append(batch_id)
    alerts = list(RunAlert.objects.filter(run=run).values(
        "id", "step", "kind", "message", "value", "threshold", "prompt_ids", "at"))
    wanted = {pid for a in alerts for pid in a["prompt_ids"]}
    answers: dict[tuple, dict] = {}  # (role, step, prompt) -> the first answer stored
    for sample in RunSample.objects.filter(run=run, prompt_id__in=wanted).order_by("id").values(
            "role", "step", "prompt_id", "prompt__messages", "completion", "reward"):
        answers.setdefault((sample["role"], sample["step"], sample["prompt_id"]), sample)
    for alert in alerts:
        alert["batches"] = batches.get(alert["id"], [])
        alert["samples"] = []
        for pid in alert["prompt_ids"]:
            policy = answers.get(("policy", alert["step"], pid))
            if policy is None:
                continue
            reference = answers.get(("reference", 0, pid))
            messages = policy["prompt__messages"] or []
            alert["samples"].append({"prompt_id": pid, "prompt": messages[-1]["content"] if messages else "",
                                     "completion": policy["completion"], "reward": policy["reward"],
                                     "reference": reference["completion"] if reference else None})
    return alerts


def alert_get(*, run: Run, pk: int) -> RunAlert | None:
    return RunAlert.objects.filter(run=run, pk=pk).first()


def run_suite(*, run: Run) -> list[dict]:
    """The behavioural suite as a table per checkpoint: [{step, checkpoint, rows: [per dimension]}]."""
    made = set(FeedbackBatch.objects.filter(run=run, alert__isnull=True).values_list("step", "dimension"))
    tables: dict[int, dict] = {}
    for row in SuiteResult.objects.filter(run=run).order_by("step", "dimension").values(
            "step", "checkpoint", "dimension", "prompts", "verified", "verifier_pass", "mean_length", "hedging",
            "list_rate", "weak", "reasons", "flagged"):
        table = tables.setdefault(row["step"], {"step": row["step"], "checkpoint": row["checkpoint"], "rows": []})
        row["batch_made"] = (row["step"], row["dimension"]) in made
        table["rows"].append(row)
    return list(tables.values())


def run_feedback_batches(*, run: Run) -> list[dict]:
    return list(FeedbackBatch.objects.filter(run=run).order_by("id").values(
        "id", "alert_id", "step", "dimension", "items", "created_at"))


def judges_of(*, project: Project):
    return Judge.objects.filter(project=project).select_related("user", "reward_model").order_by("name")


def judge_by_id(*, pk: int) -> Judge | None:
    return Judge.objects.select_related("project", "user", "reward_model").filter(pk=pk).first()


def judge_jobs_of(*, judge: Judge, limit: int = 20) -> list[JudgeJob]:
    return list(JudgeJob.objects.filter(judge=judge).order_by("-created_at")[:limit])


def judge_jobs_of_project(*, project: Project, limit: int = 20) -> list[JudgeJob]:
    return list(JudgeJob.objects.filter(judge__project=project).select_related("judge").order_by("-created_at")[:limit])


def judge_job_by_id(*, pk: int) -> JudgeJob | None:
    return JudgeJob.objects.select_related("judge__project").filter(pk=pk).first()


def redteam_attempt_get(*, project: Project, pk: int) -> RedTeamAttempt | None:
    return RedTeamAttempt.objects.select_related("reward_model").filter(project=project, pk=pk).first()


def redteam_hacks_pending(*, project: Project) -> list[RedTeamHack]:
    return list(RedTeamHack.objects.filter(attempt__project=project, status="pending")
                .select_related("attempt__author", "attempt__reward_model").order_by("created_at"))


def redteam_access_of(*, project: Project) -> list:
    return list(RedTeamAccess.objects.filter(project=project).select_related("user").order_by("user__username"))
