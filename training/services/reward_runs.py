"""Reward-model runs: queue one on the `gpu` queue, and do it on the worker: read the frozen set,
train (training/backends/reward_trl.py), score the held-out split, evaluate, register the model
with its verdict. The task is a thin wrapper around reward_run_execute."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.db import transaction

from annotation.models import Project
from rewards.formats import prompt_as_text
from rewards.models import PreferenceSet
from rewards.services.registry import evaluation_of, held_out_pairs, reward_model_register
from rewards.services.sets import set_pairs

from ..config import RewardRunConfig
from ..models import Run, RunKind
from .redteam import confirmed_hack_pairs
from .runs import (
    run_cancelled, run_cannot_train, run_checkpoint, run_guarded, run_log, run_phase, run_progress, run_should_stop,
    run_succeed,
)

class RunConfigError(ValueError):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def reward_run_create(*, project: Project, preference_set: PreferenceSet, config: RewardRunConfig, user=None) -> Run:
    """Check the config and the set now (not on the worker), save a queued run and send it to the
    `gpu` queue once the transaction commits."""
    from ..tasks import train_reward_model  # tasks import services

    errors = config.errors()
    if preference_set.project_id != project.pk:
        errors["preference_set"] = "That set belongs to another project."
    by_split = (preference_set.counts or {}).get("by_split", {})
    if not by_split.get("train"):
        errors["preference_set"] = f"{preference_set} has no training pairs."
    elif not by_split.get("test"):
        errors["preference_set"] = (f"{preference_set} has no held-out pairs, so the model could not be evaluated; "
                                    "freeze a version with a test fraction above 0.")
    if errors:
        raise RunConfigError(errors)
    run = Run.objects.create(project=project, kind=RunKind.REWARD_MODEL, preference_set=preference_set,
                             config=config.to_dict(), created_by=user)
    run_log(run_id=run.pk, message=f"Queued on {settings.TRAINING_QUEUE}: {preference_set} "
                                   f"({by_split.get('train')} training, {by_split.get('test')} held-out pairs).")
    transaction.on_commit(lambda: train_reward_model.apply_async(args=[run.pk], queue=settings.TRAINING_QUEUE))
    return run


# ---------------------------------------------------------------- on the worker


class DbReporter:
    """The backend's progress, written to the run's row as it happens."""

    def __init__(self, run_id: int):
        self.run_id = run_id

    def phase(self, text: str) -> None:
        run_phase(run_id=self.run_id, phase=text)

    def log(self, message: str, level: str = "info") -> None:
        run_log(run_id=self.run_id, message=message, level=level)

    def progress(self, *, step, total, loss, learning_rate, pairs_per_s, eta_seconds, metric, values) -> None:
        run_progress(run_id=self.run_id, step=step, total=total, loss=loss, learning_rate=learning_rate,
                     pairs_per_s=pairs_per_s, eta_seconds=eta_seconds, metric=metric, values=values)

    def checkpoint(self, *, step: int, path: str) -> None:
        run_checkpoint(run_id=self.run_id, step=step, path=path)

    def should_stop(self) -> bool:
        return run_should_stop(run_id=self.run_id)


def training_rows(*, preference_set: PreferenceSet, split: str) -> list[dict]:
    return [{"prompt": prompt_as_text(p["messages"]), "chosen": p["chosen"], "rejected": p["rejected"],
             "margin": p["margin"]} for p in set_pairs(preference_set=preference_set, split=split)]


def run_dir(run: Run) -> Path:
    return Path(settings.TRAINING_ROOT) / f"run-{run.pk}"


def accelerate_command(*, run_id: int, gpus: int, mixed_precision: str) -> list[str]:
    """One process per GPU on this machine, each running training/launch.py; rank 0 reports."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(gpus),
            "--num_machines", "1", "--mixed_precision", mixed_precision, "-m", "training.launch", str(run_id)]


def reward_run_execute(*, run_id: int, node: str = "") -> Run | None:
    """Do a queued reward-model run (once: a run that is not queued is left alone)."""
    try:
        from ..backends import reward_trl
        plan = reward_trl.device_plan(RewardRunConfig.from_dict(Run.objects.get(pk=run_id).config).mixed_precision)
    except ImportError as exc:
        return run_cannot_train(run_id=run_id, exc=exc)
    return run_guarded(run_id=run_id, device=plan.label, node=node, body=lambda run: _execute(run, plan, reward_trl))


def run_output_dir(run: Run) -> Path:
    """The run's directory, made and recorded on the run (its page and its retry read it)."""
    out = run_dir(run)
    out.mkdir(parents=True, exist_ok=True)
    Run.objects.filter(pk=run.pk).update(output_dir=str(out))
    return out


def _execute(run: Run, plan, reward_trl) -> None:
    config = RewardRunConfig.from_dict(run.config)
    out = run_output_dir(run)
    reporter = DbReporter(run.pk)
    reporter.phase("reading the preference set")
    if plan.device == "cuda" and plan.gpus > 1 and config.multi_gpu:
        outcome = _train_on_all_gpus(run, plan, config, out)
    else:
        rows = training_rows(preference_set=run.preference_set, split="train")
        reporter.log(f"{len(rows)} training pairs; backbone {config.base_model}.")
        outcome = reward_trl.train(rows=rows, config=config, output_dir=out, reporter=reporter)
    if outcome.stopped:
        run_cancelled(run_id=run.pk)
        return
    pairs = held_out_pairs(preference_set=run.preference_set)
    reporter.phase(f"evaluating on {len(pairs)} held-out pairs")
    prompts = [prompt_as_text(p["messages"]) for p in pairs]
    scores = reward_trl.score(model_dir=outcome.model_dir, prompts=prompts * 2,
                              responses=[p["chosen"] for p in pairs] + [p["rejected"] for p in pairs],
                              batch_size=config.eval_batch_size, mixed_precision=config.mixed_precision)
    report = evaluation_of(project=run.project, pairs=pairs, chosen=list(scores[: len(pairs)]),
                           rejected=list(scores[len(pairs):]))
    hacks = confirmed_hack_pairs(project=run.project)
    if hacks:
        reporter.phase(f"checking {len(hacks)} confirmed red-team hacks")
        hack_scores = reward_trl.score(model_dir=outcome.model_dir, prompts=[h[0] for h in hacks] * 2,
                                       responses=[h[1] for h in hacks] + [h[2] for h in hacks],
                                       batch_size=config.eval_batch_size, mixed_precision=config.mixed_precision)
        report.hacks = len(hacks)
        report.hacks_fixed = float((hack_scores[: len(hacks)] > hack_scores[len(hacks):]).mean())
    reward_model = reward_model_register(
        project=run.project, preference_set=run.preference_set,
        name=f"{run.project.slug}-v{run.preference_set.version}-run{run.pk}", base_model=config.base_model,
        path=outcome.model_dir, config=config.to_dict(), report=report, created_by=run.created_by)
    verdict = "ready for RL" if reward_model.ready else "not ready: " + "; ".join(reward_model.failures)
    run_log(run_id=run.pk, message=f"Held-out accuracy {report.accuracy:.3f} on {report.pairs} pairs; {verdict}.",
            level="info" if reward_model.ready else "warning")
    run_succeed(run_id=run.pk, reward_model=reward_model, throughput=outcome.pairs_per_s,
                loss=outcome.final_loss)


def _train_on_all_gpus(run: Run, plan, config: RewardRunConfig, out: Path):
    from ..backends.reward_trl import TrainOutcome

    command = accelerate_command(run_id=run.pk, gpus=plan.gpus, mixed_precision="bf16" if plan.bf16 else "fp16")
    run_log(run_id=run.pk, message="Launching " + " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True, cwd=settings.BASE_DIR)
    if done.returncode != 0:
        raise RuntimeError(f"accelerate launch exited with {done.returncode}: {done.stderr[-2000:]}")
    return TrainOutcome(**json.loads((out / "outcome.json").read_text()))

