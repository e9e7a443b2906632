"""Retry a failed run: the lifecycle every background job kind shares ends in a retry
(annotation/services/jobs.py). A run is retried as a new run with the same set and config, checked
again as at the start; a reward-model run continues from the last checkpoint the failed one kept."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..config import GenerativeJudgeConfig, RewardRunConfig, RLRunConfig
from ..models import RL_KINDS, Run, RunKind, RunStatus
from .judge_runs import generative_judge_run_create
from .reward_runs import reward_run_create
from .rl_runs import rl_run_create
from .runs import RunStateError, run_log


def run_retry(*, run: Run, user=None) -> Run:
    if run.status != RunStatus.FAILED:
        raise RunStateError(f"Only a failed run is retried; this one is {run.status}.")
    if run.kind in RL_KINDS:
        # A reward model that is not ready needs a person's reason again: RunConfigError says so.
        again = rl_run_create(project=run.project, prompt_set=run.preference_set,
                              config=RLRunConfig.from_dict(run.config), user=user)
    elif run.kind == RunKind.GENERATIVE_JUDGE:
        again = generative_judge_run_create(project=run.project, preference_set=run.preference_set,
                                            config=GenerativeJudgeConfig.from_dict(run.config), user=user)
    else:
        config = RewardRunConfig.from_dict(run.config)
        kept = [c["path"] for c in run.checkpoints if Path(c["path"]).is_dir()]
        if kept:
            config = replace(config, resume_from=kept[-1])
        again = reward_run_create(project=run.project, preference_set=run.preference_set, config=config, user=user)
    run_log(run_id=again.pk, message=f"Retry of run #{run.pk}" + (
        f", continuing from {again.config.get('resume_from')}." if again.config.get("resume_from") else "."))
    run_log(run_id=run.pk, message=f"Retried as run #{again.pk}.")
    return again

