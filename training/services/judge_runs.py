"""Generative-judge runs (RM-R1 style): queue one on the `gpu` queue, and do it on the worker: the
frozen set's rm-r1 export of its train split (judge prompt, rubric, the annotators' rationales as
the evaluation, the verdict) fine-tunes a causal LM with TRL's SFT (training/backends/judge_sft.py),
the held-out split is judged in both A/B orders, and the model is registered as a local-model
judge carrying that evaluation (training/services/judges.py), ready to calibrate, pre-label or route."""
from __future__ import annotations

import json
import re

from django.conf import settings
from django.db import transaction

from annotation.errors import ValidationFailed
from annotation.models import Project
from calibration.models import Anchor
from rewards.models import PreferenceSet
from rewards.services.sets import set_pairs
from rewards.set_formats import pair_row

from ..config import GenerativeJudgeConfig
from .judges import NAME_RE, judge_create
from ..models import Judge, JudgeKind, Run, RunKind
from .reward_runs import DbReporter, RunConfigError, run_output_dir
from .runs import run_cancelled, run_cannot_train, run_guarded, run_log, run_succeed

EVALUATION_FILE = "judge_evaluation.json"


def judge_name_of(*, run: Run, config: GenerativeJudgeConfig) -> str:
    """The configured name, else "<set name> generative judge v<run id>" in the characters a judge's
    name allows (the set's name is shortened, never the run id)."""
    if config.judge_name.strip():
        return config.judge_name.strip()
    suffix = f" generative judge v{run.pk}"
    base = re.sub(r"[^A-Za-z0-9 ._-]+", "-", run.preference_set.name or str(run.preference_set)).strip(" .-_")
    return (base or f"set {run.preference_set_id}")[: 100 - len(suffix)] + suffix


def generative_judge_run_create(*, project: Project, preference_set: PreferenceSet, config: GenerativeJudgeConfig,
                                user=None) -> Run:
    """Check the config, the set and the judge's name now (not after hours on the worker), save a
    queued run and send it to the `gpu` queue once the transaction commits."""
    from ..tasks import train_generative_judge  # tasks import services

    errors = config.errors()
    if preference_set.project_id != project.pk:
        errors["preference_set"] = "That set belongs to another project."
    by_split = (preference_set.counts or {}).get("by_split", {})
    if not by_split.get("train"):
        errors["preference_set"] = (f"{preference_set} has no training pairs, so its rm-r1 export has no rows to "
                                    "train a judge on.")
    elif not by_split.get("test"):
        errors["preference_set"] = (f"{preference_set} has no held-out pairs, so the judge could not be evaluated; "
                                    "freeze a version with a test fraction above 0.")
    name = config.judge_name.strip()
    if name and not NAME_RE.match(name):
        errors["judge_name"] = "1 to 100 letters, digits, spaces, dots, dashes or underscores."
    elif name and Judge.objects.filter(project=project, name=name).exists():
        errors["judge_name"] = "This project already has a judge of that name."
    if errors:
        raise RunConfigError(errors)
    run = Run.objects.create(project=project, kind=RunKind.GENERATIVE_JUDGE, preference_set=preference_set,
                             config=config.to_dict(), created_by=user)
    run_log(run_id=run.pk, message=f"Queued on {settings.TRAINING_QUEUE}: a generative judge from {preference_set}'s "
                                   f"rm-r1 export ({by_split.get('train')} training, {by_split.get('test')} "
                                   "held-out pairs).")
    transaction.on_commit(lambda: train_generative_judge.apply_async(args=[run.pk], queue=settings.TRAINING_QUEUE))
    return run


# ---------------------------------------------------------------- on the worker


def sft_rows(*, preference_set: PreferenceSet) -> tuple[list[dict], int]:
    """The set's training split as rm-r1 rows, and how many pairs were left out for being on an
    anchor's prompt: the judge answers the anchors in its calibration round, and its standing must
    not come from questions it was trained on."""
    anchor_prompts = set(Anchor.objects.filter(project_id=preference_set.project_id)
                         .values_list("item__prompt_id", flat=True))
    train = list(set_pairs(preference_set=preference_set, split="train"))
    kept = [p for p in train if p["prompt_id"] not in anchor_prompts]
    dimensions = preference_set.project.dimensions
    rows = [row for p in kept if (row := pair_row(p, "rm-r1", dimensions=dimensions)) is not None]
    return rows, len(train) - len(kept)


def generative_judge_run_execute(*, run_id: int, node: str = "") -> Run | None:
    """Do a queued generative-judge run (once: a run that is not queued is left alone)."""
    try:
        from ..backends import judge_sft
        from ..backends.reward_trl import device_plan
        plan = device_plan(GenerativeJudgeConfig.from_dict(Run.objects.get(pk=run_id).config).mixed_precision)
    except ImportError as exc:
        return run_cannot_train(run_id=run_id, exc=exc)
    return run_guarded(run_id=run_id, device=plan.label, node=node, body=lambda run: _execute(run, judge_sft))


def _execute(run: Run, judge_sft) -> None:
    config = GenerativeJudgeConfig.from_dict(run.config)
    out = run_output_dir(run)
    reporter = DbReporter(run.pk)

    reporter.phase("reading the rm-r1 export")
    rows, on_anchors = sft_rows(preference_set=run.preference_set)
    if on_anchors:
        reporter.log(f"{on_anchors} training pairs on anchor prompts left out: the judge is calibrated on the anchors.")
    bare = sum(1 for row in rows if "Annotators' reasons:" not in row["target"])
    reporter.log(f"{len(rows)} rm-r1 training rows; base model {config.base_model}." + (
        f" {bare} have no annotator rationale, so their evaluation only names the winner." if bare else ""),
        "warning" if bare > len(rows) / 2 else "info")
    outcome = judge_sft.train(rows=rows, config=config, output_dir=out, reporter=reporter)
    if outcome.stopped:
        run_cancelled(run_id=run.pk)
        return

    pairs = list(set_pairs(preference_set=run.preference_set, split="test"))
    reporter.phase(f"evaluating on {len(pairs)} held-out pairs, both orders")
    report = judge_sft.evaluate(model_dir=outcome.model_dir, pairs=pairs, max_new_tokens=config.max_new_tokens,
                                reporter=reporter)
    (out / "model" / EVALUATION_FILE).write_text(json.dumps(report, indent=1))

    reporter.phase("registering the judge")
    name = judge_name_of(run=run, config=config)
    try:
        judge = judge_create(project=run.project, name=name, kind=JudgeKind.LOCAL_MODEL, model_dir=outcome.model_dir,
                             evaluation=report, source_run_id=run.pk, created_by=run.created_by)
    except ValidationFailed as exc:  # e.g. the name was taken while the run trained
        problems = "; ".join(f"{k}: {v}" for k, v in (exc.field_errors or {}).items())
        raise RuntimeError(f"the judge could not be registered as {name!r} ({problems or exc}); the trained model "
                           f"is kept at {outcome.model_dir}") from exc
    run_log(run_id=run.pk, message=(
        f"Held-out accuracy {_pct(report['accuracy'])} over both orders of {report['n']} pairs, position consistency "
        f"{_pct(report['position_consistency'])}; registered as judge {judge.name!r} (needs its calibration round "
        "before live use, like any rater)."))
    summary = {**(run.summary or {}), "evaluation": report, "judge_id": judge.pk, "judge_name": judge.name,
               "training": {"examples": outcome.examples, "too_long": outcome.too_long, "steps": outcome.steps,
                            "seconds": round(outcome.seconds, 3)}}
    run_succeed(run_id=run.pk, summary=summary, throughput=outcome.examples_per_s, loss=outcome.final_loss)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
