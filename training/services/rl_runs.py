"""GRPO and PPO runs: queue one on the `gpu` queue (after the reward model's readiness gate), and do
it on the worker:

1. read the prompt set (a frozen preference set's prompts: train split to train on, held-out
   split for the behavioural suite);
2. sample the starting policy on every training prompt; Pre-PPO keeps the hardest fraction per
   domain and may put math and code first (rewards/prompt_selection.py); these samples are also
   kept as the reference's answers, for closing the loop;
3. run the behavioural suite on the starting policy (step 0);
4. train (training/backends/grpo_trl.py or ppo.py) with the hybrid reward; every step's metrics go
   to the run and through the reward-hacking monitors, every checkpoint through the suite.

Runs on a Ray engine (OpenRLHF, verl) are written out and submitted instead (training/scaleout.py).
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from django.conf import settings
from django.db import transaction

from annotation.models import Project
from rewards.formats import prompt_as_text
from rewards.models import PreferenceSet, RewardModel
from rewards.services.registry import NotReady, reward_model_select_for_rl
from rewards.services.sets import set_pairs
from rewards.set_formats import prompt_rows

from ..config import RLRunConfig
from ..models import Run, RunAlert, RunKind, RunSample, SampleRole, SuiteResult
from ..monitors import Monitor, MonitorThresholds
from .reward_runs import RunConfigError, run_dir
from .runs import (
    run_cancelled, run_cannot_train, run_checkpoint, run_guarded, run_log, run_phase, run_progress, run_should_stop,
    run_succeed,
)

SAMPLES_PER_ALERT = 8


# ---------------------------------------------------------------- project thresholds


def monitor_thresholds(*, project: Project) -> MonitorThresholds:
    return MonitorThresholds.from_dict(project.monitor_thresholds or {})


def monitor_thresholds_set(*, project: Project, values: dict) -> MonitorThresholds:
    """Validate and store a project's monitor thresholds; keys left out keep their current value."""
    current = monitor_thresholds(project=project).to_dict()
    try:
        thresholds = MonitorThresholds.from_dict({**current, **values})
    except ValueError as exc:
        raise ValueError({"thresholds": str(exc)}) from exc
    errors = thresholds.errors()
    if errors:
        raise ValueError(errors)
    project.monitor_thresholds = thresholds.to_dict()
    project.save(update_fields=["monitor_thresholds"])
    return thresholds


# ---------------------------------------------------------------- queueing


def rl_prompt_rows(*, preference_set: PreferenceSet, split: str) -> list[dict]:
    """The set's distinct prompts of a split as TRL prompt-only rows, with their prompt ids. A
    frozen set keeps its texts when a prompt is deleted later; such prompts are left out here,
    since the run's samples and feedback items point at live prompts."""
    from annotation.models import Prompt

    pairs = list(set_pairs(preference_set=preference_set, split=split))
    ids = list(dict.fromkeys(p["prompt_id"] for p in pairs))
    alive = set(Prompt.objects.filter(pk__in=ids).values_list("pk", flat=True))
    return [{**row, "prompt_id": prompt_id} for row, prompt_id in zip(prompt_rows(pairs, "trl-prompt-only"), ids)
            if prompt_id in alive]


def rl_run_create(*, project: Project, prompt_set: PreferenceSet, config: RLRunConfig, user=None,
                  override_reason: str = "") -> Run:
    """Check the config, the prompt set and the reward model's readiness now (not on the worker),
    save a queued run and send it to the `gpu` queue once the transaction commits."""
    from ..tasks import train_policy

    errors = config.errors()
    if prompt_set.project_id != project.pk:
        errors["prompt_set"] = "That set belongs to another project."
    elif not (prompt_set.counts or {}).get("by_split", {}).get("train"):
        errors["prompt_set"] = f"{prompt_set} has no training prompts."
    reward_model = None
    if config.reward_model_id is not None:
        reward_model = RewardModel.objects.filter(pk=config.reward_model_id, project=project).first()
        if reward_model is None:
            errors["reward_model_id"] = "No such reward model in this project."
    if config.engine != "local":
        errors.update(_engine_errors(config))
    if errors:
        raise RunConfigError(errors)
    kind = RunKind.GRPO if config.algorithm == "grpo" else RunKind.PPO
    with transaction.atomic():
        override = None
        if reward_model is not None:
            try:
                override = reward_model_select_for_rl(reward_model=reward_model, user=user,
                                                      override_reason=override_reason,
                                                      purpose=f"{config.algorithm.upper()} run on {prompt_set}")
            except NotReady as exc:
                raise RunConfigError({"reward_model_id": str(exc)}) from exc
        run = Run.objects.create(project=project, kind=kind, preference_set=prompt_set, config=config.to_dict(),
                                 reward_model=reward_model, created_by=user)
        reward = (f"reward model {reward_model.name}" + (" (not ready; override recorded)" if override else "")
                  if reward_model else "verifiers only")
        where = f"Ray at {config.ray_address} ({config.engine})" if config.engine != "local" else settings.TRAINING_QUEUE
        run_log(run_id=run.pk, message=f"Queued {config.algorithm.upper()} on {where}: policy {config.policy_path}, "
                                       f"{reward}, verifiers {', '.join(config.verifiers) or 'none'}.")
    # A Ray run's worker only submits and watches: it must not hold the one-at-a-time gpu queue.
    queue = settings.TRAINING_QUEUE if config.engine == "local" else settings.CELERY_TASK_DEFAULT_QUEUE
    transaction.on_commit(lambda: train_policy.apply_async(args=[run.pk], queue=queue))
    return run


def _engine_errors(config: RLRunConfig) -> dict[str, str]:
    """What a Ray engine would refuse, said at launch rather than on the worker."""
    from ..scaleout import _plan

    errors = {}
    if config.reward_model_id is None:
        errors["reward_model_id"] = (f"{config.engine} runs score with a reward model (our verifiers run only on "
                                     "local runs); choose one from the registry.")
    try:
        _plan(config.to_dict())
    except ValueError as exc:
        errors["engine"] = str(exc)
    return errors


# ---------------------------------------------------------------- on the worker


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class DbRLHooks:
    """A backend's steps and checkpoints, written to the run as they happen: metrics (the charts),
    monitor alerts with the answers that raised them, and the behavioural suite per checkpoint."""

    def __init__(self, *, run: Run, config: RLRunConfig, thresholds: MonitorThresholds, suite: Sequence[dict]):
        self.run_id, self.config, self.suite = run.pk, config, list(suite)
        self.thresholds = thresholds
        self.monitor = Monitor(thresholds)
        self.started = time.monotonic()
        self.first_step: int | None = None
        self.completions = 0
        self.baseline: dict[str, object] = {}

    def phase(self, text: str) -> None:
        run_phase(run_id=self.run_id, phase=text)

    def log(self, message: str, level: str = "info") -> None:
        run_log(run_id=self.run_id, message=message, level=level)

    def should_stop(self) -> bool:
        return run_should_stop(run_id=self.run_id)

    def step(self, *, step: int, total: int, loss, learning_rate, metrics: dict, samples: list[dict]) -> None:
        if self.first_step is None:
            self.first_step, self.started = step, time.monotonic()
        self.completions += len(samples)
        elapsed = time.monotonic() - self.started
        rate = self.completions / elapsed if elapsed > 0 else None
        steps_done = step - self.first_step + 1
        eta = elapsed / steps_done * (total - step) if steps_done and elapsed > 0 else None
        values = {k: _finite(v) for k, v in metrics.items()}
        run_progress(run_id=self.run_id, step=step, total=total, loss=_finite(loss), learning_rate=learning_rate,
                     pairs_per_s=rate, eta_seconds=eta, metric=True, values=values)
        for alert in self.monitor.observe({"step": step, **values}):
            self._alert(alert, samples)

    def _alert(self, alert, samples: list[dict]) -> None:
        best: dict = {}
        for sample in samples:  # per prompt, the answer the reward liked best: what a hack looks like
            pid = sample.get("prompt_id")
            if pid is not None and (pid not in best or sample["reward"] > best[pid]["reward"]):
                best[pid] = sample
        kept = list(best.values())[:SAMPLES_PER_ALERT]
        RunSample.objects.bulk_create([
            RunSample(run_id=self.run_id, step=alert.step, role=SampleRole.POLICY, prompt_id=s["prompt_id"],
                      completion=s["completion"], reward=_finite(s["reward"])) for s in kept])
        RunAlert.objects.create(run_id=self.run_id, step=alert.step, kind=alert.kind, message=alert.message,
                                value=_finite(alert.value), threshold=_finite(alert.threshold),
                                prompt_ids=[s["prompt_id"] for s in kept])
        run_log(run_id=self.run_id, message=f"Alert at step {alert.step}: {alert.message}", level="warning")

    def checkpoint(self, *, step: int, path: str, generate) -> None:
        run_checkpoint(run_id=self.run_id, step=step, path=path)
        self.run_suite(step=step, path=path, completions=generate(self.suite))

    def run_suite(self, *, step: int, path: str, completions: Sequence[str]) -> list:
        from .. import suite as behaviour

        results = behaviour.evaluate(self.suite, completions, verifiers=self.config.verifiers,
                                     format_tags=self.config.format_tags)
        for result in results:
            baseline = self.baseline.get(result.dimension)
            behaviour.judge(result, baseline if step > 0 else None, self.thresholds)
            if step == 0:
                self.baseline[result.dimension] = result
            SuiteResult.objects.update_or_create(
                run_id=self.run_id, step=step, dimension=result.dimension,
                defaults=dict(checkpoint=path, prompts=result.prompts, verified=result.verified,
                              verifier_pass=result.verifier_pass, mean_length=result.mean_length,
                              hedging=result.hedging, list_rate=result.list_rate, weak=result.weak,
                              reasons=result.reasons, flagged=behaviour.flagged_prompt_ids(result),
                              answers=[{"prompt_id": p["prompt_id"], "score": p["score"]} for p in result.per_prompt]))
        RunSample.objects.bulk_create([
            RunSample(run_id=self.run_id, step=step, role=SampleRole.POLICY, prompt_id=row["prompt_id"],
                      completion=completion) for row, completion in zip(self.suite, completions)])
        if step > 0 and self.config.rubric_raters > 0:
            self._to_people(step)
        weak = [f"{r.dimension} ({'; '.join(r.reasons)})" for r in results if r.weak]
        where = "the starting policy" if step == 0 else f"step {step}"
        run_log(run_id=self.run_id, message=f"Behavioural suite on {where}: {len(self.suite)} prompts"
                + (f"; weak: {', '.join(weak)}" if weak else "; nothing weaker than the start."),
                level="warning" if weak else "info")
        return results


    def _to_people(self, step: int) -> None:
        """The checkpoint's suite answers, and the baseline's, to people as rubric evaluations
        (where the spec has a rubric); the starting policy's answers are stored by then."""
        from .human_suite import HumanSuiteError, rubric_checkpoint_send

        try:
            rubric_checkpoint_send(run=Run(pk=self.run_id), step=step, raters=self.config.rubric_raters)
        except HumanSuiteError as exc:
            run_log(run_id=self.run_id, message=f"Suite answers at step {step} not sent to people: {exc}")
        except Exception as exc:  # labelling work is not worth an expensive run: log it, train on
            run_log(run_id=self.run_id, level="warning",
                    message=f"Suite answers at step {step} not sent to people ({type(exc).__name__}: {exc}); "
                            "send them from the run page.")


def rl_run_execute(*, run_id: int, node: str = "") -> Run | None:
    """Do a queued GRPO or PPO run (once: a run that is not queued is left alone)."""
    config = RLRunConfig.from_dict(Run.objects.get(pk=run_id).config)
    if config.engine != "local":
        from .scaleout_runs import external_run_execute

        return external_run_execute(run_id=run_id, node=node)
    try:
        from ..backends.reward_trl import device_plan
        plan = device_plan("auto")
    except ImportError as exc:
        return run_cannot_train(run_id=run_id, exc=exc)
    return run_guarded(run_id=run_id, device=plan.label, node=node, body=lambda run: _execute(run, config, plan.device))


def _execute(run: Run, config: RLRunConfig, device: str) -> None:
    from rewards.prompt_selection import select_hardest

    from .. import suite as behaviour
    from ..backends.rl_common import HybridReward, generate, load_policy

    out = run_dir(run)
    out.mkdir(parents=True, exist_ok=True)
    Run.objects.filter(pk=run.pk).update(output_dir=str(out), total_steps=config.steps)
    run_phase(run_id=run.pk, phase="reading the prompt set")
    rows = rl_prompt_rows(preference_set=run.preference_set, split="train")
    held_out = rl_prompt_rows(preference_set=run.preference_set, split="test")
    if not held_out:
        run_log(run_id=run.pk, level="warning", message="The set has no held-out prompts: the behavioural suite "
                                                        "uses training prompts, so it measures fit, not behaviour.")
    suite = behaviour.suite_rows(held_out or rows, per_dimension=config.suite_per_dimension, seed=config.seed)
    hooks = DbRLHooks(run=run, config=config, thresholds=monitor_thresholds(project=run.project), suite=suite)
    scorer = None
    if config.reward_model_id is not None and run.reward_model is None:
        raise RuntimeError(f"The reward model {config.reward_model_id} this run was launched with has been deleted.")
    if run.reward_model is not None:
        from ..backends.reward_trl import RewardScorer

        hooks.phase("loading the reward model")
        scorer = RewardScorer(run.reward_model.path)
    reward = HybridReward(config=config, scorer=scorer)
    hooks.log(f"{len(rows)} training prompts, {len(suite)} suite prompts; reward: "
              + " + ".join(f"{reward.weights[c]:g} x {c}" for c in reward.components) + ".")

    hooks.phase("sampling the starting policy")
    import torch

    torch.manual_seed(config.seed)
    policy, tokenizer = load_policy(config.policy_path, device)
    draws, scores, applies, first_scores = [], [0.0] * len(rows), scorer is not None, None
    for _ in range(config.selection_samples):
        if _cancelled(hooks, run):
            return
        completions = generate(policy, tokenizer, rows, max_new_tokens=config.max_new_tokens, greedy=False,
                               temperature=config.temperature)
        draws.append(completions)
        # "Score them with the reward model"; without one, the verifiers' hybrid reward is all there is.
        if scorer:
            totals = scorer([_text(r) for r in rows], completions)
        else:
            batch = reward(rows, completions)
            totals = batch.total
            applies = applies or any(v is not None for values in batch.components.values() for v in values)
        totals = [float(np.nan_to_num(t, nan=0.0)) for t in totals]
        first_scores = first_scores or totals
        scores = [s + t / config.selection_samples for s, t in zip(scores, totals)]
    if not applies:
        raise RuntimeError("Nothing would reward this run: it has no reward model, and none of the verifiers "
                           f"({', '.join(config.verifiers)}) applies to any training prompt (no ground truth, no "
                           "tests, no required tags).")
    selection = select_hardest(scores, [r.get("domain") or "" for r in rows], fraction=config.hardest_fraction,
                               curriculum=config.curriculum)
    report = {**selection.report(), "scored_by": "reward model" if scorer else "hybrid reward (no reward model)",
              "samples_per_prompt": config.selection_samples}
    Run.objects.filter(pk=run.pk).update(summary={"prompt_selection": report})
    hooks.log(f"Pre-PPO kept {len(selection.kept)} of {len(rows)} prompts"
              + (" (hardest first within each domain)" if config.hardest_fraction < 1 else "")
              + ("; math and code first." if config.curriculum else "."))
    if config.algorithm == "grpo" and len(selection.kept) < config.prompts_per_step:
        raise RuntimeError(f"{len(selection.kept)} prompts are kept, fewer than the {config.prompts_per_step} a GRPO "
                           "step takes: lower prompts_per_step or keep a larger hardest_fraction.")

    # The starting policy's first draw is the reference's answer when the reference is the start.
    reference_train, reference_scores = draws[0], first_scores
    if config.reference != config.policy_path:
        reference, reference_tokenizer = load_policy(config.reference, device)
        reference_train = generate(reference, reference_tokenizer, rows, max_new_tokens=config.max_new_tokens)
        reference_scores = [None] * len(rows)  # not scored: only the starting policy's answers were
        reference_suite = generate(reference, reference_tokenizer, suite, max_new_tokens=config.max_new_tokens)
        del reference
    RunSample.objects.bulk_create([
        RunSample(run_id=run.pk, step=0, role=SampleRole.REFERENCE, prompt_id=row["prompt_id"], completion=text,
                  reward=score) for row, text, score in zip(rows, reference_train, reference_scores)])

    if _cancelled(hooks, run):
        return
    hooks.phase("behavioural suite on the starting policy")
    start = generate(policy, tokenizer, suite, max_new_tokens=config.max_new_tokens)
    hooks.run_suite(step=0, path=config.policy_path, completions=start)
    if config.reference == config.policy_path:
        reference_suite = start
    RunSample.objects.bulk_create([
        RunSample(run_id=run.pk, step=0, role=SampleRole.REFERENCE, prompt_id=row["prompt_id"], completion=text)
        for row, text in zip(suite, reference_suite)])
    del policy
    if _cancelled(hooks, run):
        return

    if config.algorithm == "grpo":
        from ..backends import grpo_trl as backend
    else:
        from ..backends import ppo as backend
    outcome = backend.train(config=config, rows=[rows[i] for i in selection.kept], reward=reward,
                            output_dir=out / "policy", hooks=hooks, device=device)
    if outcome.stopped:
        run_cancelled(run_id=run.pk)
        return
    run.refresh_from_db()
    last = run.metrics.order_by("-step").first()
    summary = {**run.summary, "final_policy": outcome.last_checkpoint,
               "final": (last.values if last else {}), "alerts": run.alerts.count()}
    run_succeed(run_id=run.pk, summary=summary)


def _cancelled(hooks: DbRLHooks, run: Run) -> bool:
    """Between the start-up phases: a cancel asked for meanwhile ends the run here."""
    if hooks.should_stop():
        run_cancelled(run_id=run.pk)
        return True
    return False


def _text(row: dict) -> str:
    return prompt_as_text(row["prompt"])
