"""htmx pages for training: the runs list with the start forms (reward model; GRPO/PPO policy run)
and the monitor thresholds, one run live (progress bar, charts, log, checkpoints, cancel; for a
policy run also its alerts and behavioural suite, each one click from a labelling batch), the
reward-model registry side by side, one model's evaluation with its choice for RL."""
from __future__ import annotations

import json
import math
from dataclasses import asdict

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.permissions import can_export, can_lead, can_train
from rewards.selectors import overrides_of, preference_sets_of, reward_model_get, reward_models_of
from rewards.services.registry import NotReady, readiness_minimums_set, readiness_thresholds, reward_model_select_for_rl
from training.backbones import minilm_dir, model_dirs
from training.config import RewardRunConfig, RLRunConfig
from training.models import RL_KINDS, RunStatus
from training.monitors import MonitorThresholds
from training.selectors import (
    alert_get, run_alerts, run_feedback_batches, run_for_reward_model, run_get, run_logs, run_metrics, run_suite,
    runs_of,
)
from training.services.feedback import FeedbackError, feedback_batch_create
from training.services.human_suite import HumanSuiteError, human_suite_report, rubric_checkpoint_send
from training.services.redteam import confirmed_hacks
from training.services.reward_runs import RunConfigError, reward_run_create
from training.services.rl_runs import monitor_thresholds, monitor_thresholds_set, rl_run_create
from training.services.retry import run_retry
from training.services.runs import RunStateError, run_cancel, run_fresh

from .common import posted_id, project_for

FORM_FIELDS = ("base_model", "epochs", "max_steps", "learning_rate", "batch_size", "max_length",
               "center_rewards_coefficient", "checkpoint_every", "seed", "resume_from")


def _default_backbone() -> str:
    try:
        return str(minilm_dir())
    except Exception:  # noqa: BLE001 - the backbone package is not installed on the web host: no hint
        return ""


@login_required
def runs_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_export)
    may_train = can_train(user=request.user, project=project)
    form = {name: request.POST.get(name, "") for name in FORM_FIELDS} if request.method == "POST" else {}
    if request.method == "POST":
        if not may_train:
            raise PermissionDenied("Only engineers start training runs.")
        def create(chosen):
            values = {k: v for k, v in form.items() if v.strip()}
            values["use_margin"] = request.POST.get("use_margin") == "on"
            return reward_run_create(project=project, preference_set=chosen,
                                     config=RewardRunConfig.from_dict(values), user=request.user)

        run = _start(request, project, "preference_set", create)
        if run is not None:
            return redirect(reverse("run", args=[slug, run.pk]))
    defaults = RewardRunConfig()
    return render(request, "frontend/runs.html", {
        "project": project, "runs": runs_of(project=project)[:100], "sets": preference_sets_of(project=project),
        "may_train": may_train, "defaults": defaults, "help": RewardRunConfig.help(),
        "form": form, "backbone": form.get("base_model") or _default_backbone(),
        "model_dirs": model_dirs() if may_train else [], "model_roots": [*settings.MODEL_ROOTS, settings.TRAINING_ROOT],
        "rl_defaults": RLRunConfig(), "rl_help": RLRunConfig.help(), "reward_models": reward_models_of(project=project),
        "may_set_thresholds": can_lead(user=request.user, project=project) or may_train,
        "thresholds": [(name, value, MonitorThresholds.help()[name])
                       for name, value in monitor_thresholds(project=project).to_dict().items()],
    })


RL_FORM_FIELDS = ("algorithm", "policy_path", "reference_path", "reward_model_id", "reward_weights", "format_tags",
                  "kl_coef", "steps", "generations", "prompts_per_step", "learning_rate", "max_new_tokens", "seed",
                  "checkpoint_every", "hardest_fraction", "engine", "ray_address")


@login_required
@require_POST
def rl_run_start(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_train)

    def create(chosen):
        values = {k: request.POST[k] for k in RL_FORM_FIELDS if request.POST.get(k, "").strip()}
        values["verifiers"] = request.POST.getlist("verifiers")
        values["curriculum"] = request.POST.get("curriculum") == "on"
        return rl_run_create(project=project, prompt_set=chosen, config=RLRunConfig.from_dict(values),
                             user=request.user, override_reason=request.POST.get("override_reason", ""))

    run = _start(request, project, "prompt_set", create)
    return redirect(reverse("run", args=[slug, run.pk]) if run else reverse("runs", args=[slug]))


def _start(request: HttpRequest, project, set_field: str, create):
    """Both start forms: the chosen frozen set handed to `create` (a service call), or the
    reason it was refused as a message."""
    chosen = next((s for s in preference_sets_of(project=project) if str(s.pk) == request.POST.get(set_field)), None)
    try:
        if chosen is None:
            raise RunConfigError({set_field: "Choose a frozen set."})
        return create(chosen)
    except RunConfigError as exc:
        messages.error(request, "Not started: " + "; ".join(f"{k}: {v}" for k, v in exc.errors.items()))
    except ValueError as exc:
        messages.error(request, f"Not started: {exc}")
    return None


@login_required
@require_POST
def monitor_thresholds_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_export)  # leads and engineers, the same people
    names = MonitorThresholds.help()
    values = {k: request.POST[k] for k in names if request.POST.get(k, "").strip()}
    if "length_alone_without_verifier" in names:
        values["length_alone_without_verifier"] = request.POST.get("length_alone_without_verifier") == "on"
    try:
        monitor_thresholds_set(project=project, values=values)
    except ValueError as exc:
        messages.error(request, f"Thresholds not changed: {exc}")
    else:
        messages.success(request, "Monitor thresholds saved; runs started from now on are watched with them.")
    return redirect(reverse("runs", args=[slug]))


def _run_or_404(project, run_id: int):
    run = run_get(project=project, pk=run_id)
    if run is None:
        raise Http404("No such run.")
    return run_fresh(run=run)


@login_required
def run_page(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    """The run, live: the page polls the status part every 2 s until the run ends."""
    project = project_for(request, slug, can_export)
    run = _run_or_404(project, run_id)
    policy_run = run.kind in RL_KINDS
    # A diverged run logs NaN losses, which JSON cannot carry: they are gaps in the chart.
    points = [{"step": m["step"], "loss": _finite(m["loss"]),
               **({k: _finite(v) for k, v in m["values"].items()} if policy_run else {})}
              for m in run_metrics(run=run)]
    may_train = can_train(user=request.user, project=project)
    context = {"project": project, "run": run, "may_train": may_train, "policy_run": policy_run,
               "metrics_json": json.dumps(points), "logs": run_logs(run=run, limit=200),
               # A run that ended before logging a step has nothing to chart: no empty axes.
               "show_charts": bool(points) or run.status in (RunStatus.QUEUED, RunStatus.RUNNING)}
    if policy_run:
        # Everyone who may read this page (leads and engineers) may also send its findings to labelling.
        suite = run_suite(run=run)
        people = human_suite_report(run=run)
        sent = {row["step"] for d in people["dimensions"] for row in d["rows"]}
        context.update(alerts=run_alerts(run=run), suite=suite, batches=run_feedback_batches(run=run),
                       kl_ceiling=monitor_thresholds(project=project).kl_ceiling, people=people,
                       unsent_steps=[t["step"] for t in suite if t["step"] > 0 and t["step"] not in sent])
    if request.htmx:
        return render(request, "frontend/_run_live.html", context)
    return render(request, "frontend/run.html", context)


def _finite(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


@login_required
@require_POST
def run_feedback_view(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    """One click: a labelling batch from an alert, or from a checkpoint's dimension."""
    project = project_for(request, slug, can_export)  # leads and engineers
    run = _run_or_404(project, run_id)
    if run.kind not in RL_KINDS:
        raise Http404("Not a policy run.")
    alert = None
    if request.POST.get("alert"):
        alert = alert_get(run=run, pk=int(request.POST["alert"])) if request.POST["alert"].isdigit() else None
        if alert is None:
            raise Http404("No such alert.")
    try:
        step = int(request.POST.get("step") or 0)
        batch = feedback_batch_create(run=run, user=request.user, alert=alert, step=step,
                                      dimension=request.POST.get("dimension", ""))
    except (FeedbackError, ValueError) as exc:
        messages.error(request, f"No batch made: {exc}")
    else:
        messages.success(request, f"{len(batch.items)} comparison items created (policy at step {batch.step} against "
                                  "the reference); they are in the annotators' queue now.")
    return redirect(reverse("run", args=[slug, run_id]))


@login_required
@require_POST
def run_human_suite_view(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    """A checkpoint's suite answers (and the baseline's) to people as rubric evaluations."""
    project = project_for(request, slug, can_export)  # leads and engineers
    run = _run_or_404(project, run_id)
    if run.kind not in RL_KINDS:
        raise Http404("Not a policy run.")
    try:
        sent = rubric_checkpoint_send(run=run, step=posted_id(request.POST.get("step")) or 0, user=request.user)
    except HumanSuiteError as exc:
        messages.error(request, f"Not sent: {exc}")
    else:
        messages.success(request, f"{sent['created']} rubric evaluations queued for people ({sent['shared']} answers "
                                  "share an item with an identical one).")
    return redirect(reverse("run", args=[slug, run_id]) + "#human-suite")


@login_required
@require_POST
def run_retry_view(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    """A failed run again, as a new run; on to its page (or back here with why not)."""
    project = project_for(request, slug, can_train)
    run = _run_or_404(project, run_id)
    try:
        again = run_retry(run=run, user=request.user)
    except (RunStateError, RunConfigError) as exc:
        messages.error(request, f"Not retried: {exc}")
        return redirect(reverse("run", args=[slug, run_id]))
    return redirect(reverse("run", args=[slug, again.pk]))


@login_required
@require_POST
def run_cancel_view(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    project = project_for(request, slug, can_train)
    run = _run_or_404(project, run_id)
    try:
        run_cancel(run=run, user=request.user)
    except RunStateError as exc:
        messages.error(request, str(exc))
    return redirect(reverse("run", args=[slug, run_id]))


def _columns(models) -> list[tuple[str, str]]:
    """Every (breakdown, category) any listed model was evaluated on, for side-by-side columns."""
    seen = []
    for model in models:
        for dimension, rows in (model.evaluation.get("categories") or {}).items():
            for row in rows:
                if (dimension, row["name"]) not in seen:
                    seen.append((dimension, row["name"]))
    return sorted(seen)


@login_required
def reward_models_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_export)
    may_set = can_lead(user=request.user, project=project) or can_train(user=request.user, project=project)
    if request.method == "POST":
        if not may_set:
            raise PermissionDenied("Only leads and engineers set readiness minimums.")
        try:
            readiness_minimums_set(project=project, values={k: request.POST[k] for k in
                                                            ("overall", "per_category", "category_min_pairs",
                                                             "length_controlled", "hacks_fixed")
                                                            if request.POST.get(k, "").strip()})
        except ValueError as exc:
            messages.error(request, f"Minimums not changed: {exc}")
        else:
            messages.success(request, "Readiness minimums saved; models trained from now on are judged by them.")
        return redirect(reverse("reward-models", args=[slug]))
    models = list(reward_models_of(project=project))
    columns = _columns(models)
    rows = []
    for model in models:
        cells = {(d, r["name"]): r for d, rs in (model.evaluation.get("categories") or {}).items() for r in rs}
        rows.append({"model": model, "e": model.evaluation, "cells": [cells.get(c) for c in columns],
                     "run": run_for_reward_model(reward_model=model)})
    return render(request, "frontend/reward_models.html", {
        "project": project, "rows": rows, "columns": columns, "may_set": may_set,
        "minimums": asdict(readiness_thresholds(project=project)),
    })


@login_required
def reward_model_page(request: HttpRequest, slug: str, model_id: int) -> HttpResponse:
    project = project_for(request, slug, can_export)
    model = reward_model_get(project=project, pk=model_id)
    if model is None:
        raise Http404("No such reward model.")
    may_train = can_train(user=request.user, project=project)
    if request.method == "POST":
        if not may_train:
            raise PermissionDenied("Only engineers choose reward models for RL.")
        try:
            override = reward_model_select_for_rl(reward_model=model, user=request.user,
                                                  override_reason=request.POST.get("override_reason", ""),
                                                  purpose=request.POST.get("purpose", ""))
        except NotReady as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Selected for RL" + (" with a recorded override." if override else " (ready)."))
        return redirect(reverse("reward-model", args=[slug, model_id]))
    chart = {"reliability": model.evaluation.get("reliability", []),
             "categories": model.evaluation.get("categories", {}),
             "per_category": model.thresholds.get("per_category"), "overall": model.thresholds.get("overall")}
    return render(request, "frontend/reward_model.html", {
        "project": project, "model": model, "e": model.evaluation, "chart": chart, "may_train": may_train,
        "overrides": overrides_of(reward_model=model), "run": run_for_reward_model(reward_model=model),
        "config_json": json.dumps(model.config, indent=2), "hacks_found": confirmed_hacks(reward_model=model),
    })
