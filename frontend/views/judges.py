"""htmx page for AI judges (training/services/judges.py): the project's judges with their standing from
anchors, agreement with people, pre-label overturn rate, bias flags and cost/latency line (a table
and an interval chart), a form to register one, and per judge a button that starts its work on a
worker (calibration, pre-labels, tie-breaks, HyPER routing) with a live progress bar. Leads and
engineers only: a judge's labels are other raters' labels, which annotators never see."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.errors import ValidationFailed
from annotation.permissions import can_export, can_train
from rewards.selectors import preference_set_of, preference_sets_of, reward_model_get, reward_models_of
from training.config import GenerativeJudgeConfig
from training.services.judge_runs import generative_judge_run_create
from training.services.reward_runs import RunConfigError
from training.services.judges import judge_create, judge_job_progress, judge_job_request, judges_report
from training.models import JudgeKind, JudgeUse
from training.selectors import judge_by_id, judge_job_by_id, judge_jobs_of_project

from .common import posted_id, project_for

FORM_FIELDS = ("name", "kind", "model_dir", "endpoint_url", "endpoint_model", "api_key_env")
NUMBER_FIELDS = {"sure_at": float, "cost_per_call": float, "cost_per_1k_tokens": float, "timeout_seconds": int}


def _chart(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        a, o = r["agreement"], r["overturn"]
        out.append({"name": r["judge"].name,
                    "agreement": [a["low"], a["rate"], a["high"]] if a["rate"] is not None else None,
                    "overturn": [o["low"], o["rate"], o["high"]] if o["rate"] is not None else None})
    return out


@login_required
def judges_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_export)
    form, errors = {}, {}
    if request.method == "POST":
        form = {name: request.POST.get(name, "").strip() for name in (*FORM_FIELDS, *NUMBER_FIELDS, "reward_model")}
        values = {name: form[name] for name in FORM_FIELDS}
        for name, cast in NUMBER_FIELDS.items():
            if form[name]:
                try:
                    values[name] = cast(form[name])
                except ValueError:
                    errors[name] = "A number."
        reward_model = None
        if form["reward_model"]:
            reward_model = reward_model_get(project=project, pk=posted_id(form["reward_model"]) or 0)
            if reward_model is None:
                errors["reward_model"] = "No such reward model in this project."
        if not errors:
            try:
                judge = judge_create(project=project, created_by=request.user, reward_model=reward_model, **values)
            except ValidationFailed as exc:
                errors = exc.field_errors
            else:
                messages.success(request, f"Judge {judge.name} registered. Run its calibration round first: "
                                          "its standing comes from the anchors, as a person's does.")
                return redirect(reverse("judges", args=[slug]))
    rows = judges_report(project=project)
    jobs = [judge_job_progress(job=j) for j in judge_jobs_of_project(project=project)]
    return render(request, "frontend/judges.html", {
        "project": project, "rows": rows, "jobs": jobs, "kinds": JudgeKind.choices, "uses": JudgeUse.choices,
        "reward_models": list(reward_models_of(project=project)), "form": form, "errors": errors,
        "chart": _chart(rows), "may_train": can_train(user=request.user, project=project),
        "sets": list(preference_sets_of(project=project)),
    }, status=400 if errors else 200)


@login_required
@require_POST
def judge_train(request: HttpRequest, slug: str) -> HttpResponse:
    """Queue a generative judge run (engineers): SFT on a set's rm-r1 export, evaluated and registered."""
    project = project_for(request, slug, can_train)
    chosen = request.POST.get("preference_set", "")
    preference_set = preference_set_of(project=project, pk=posted_id(chosen) or 0)
    if preference_set is None:
        messages.error(request, "Not started: choose one of this project's preference sets.")
        return redirect(reverse("judges", args=[slug]))
    values = {"base_model": request.POST.get("base_model", "").strip(),
              "judge_name": request.POST.get("judge_name", "").strip()}
    for name, cast in (("epochs", float), ("max_steps", int)):
        raw = request.POST.get(name, "").strip()
        if raw:
            try:
                values[name] = cast(raw)
            except ValueError:
                messages.error(request, f"Not started: {name} must be a number.")
                return redirect(reverse("judges", args=[slug]))
    try:
        run = generative_judge_run_create(project=project, preference_set=preference_set,
                                          config=GenerativeJudgeConfig.from_dict(values), user=request.user)
    except RunConfigError as exc:
        messages.error(request, "Not started: " + "; ".join(f"{k}: {v}" for k, v in exc.errors.items()))
        return redirect(reverse("judges", args=[slug]))
    return redirect(reverse("run", args=[slug, run.pk]))


@login_required
@require_POST
def judge_job_start(request: HttpRequest, slug: str, judge_id: int) -> HttpResponse:
    project = project_for(request, slug, can_export)
    judge = judge_by_id(pk=judge_id)
    if judge is None or judge.project_id != project.pk:
        raise Http404("No such judge.")
    limit = request.POST.get("limit", "").strip()
    try:
        job = judge_job_request(judge=judge, use=request.POST.get("use", ""), created_by=request.user,
                                limit=posted_id(limit))
    except ValidationFailed as exc:
        messages.error(request, f"Not started: {'; '.join(exc.field_errors.values())}")
    else:
        messages.success(request, f"{job.get_use_display()} by {judge.name} queued.")
    return redirect(reverse("judges", args=[slug]))


@login_required
def judge_job_page(request: HttpRequest, slug: str, job_id: int) -> HttpResponse:
    """One judge job's progress row (the page polls it while it runs)."""
    project = project_for(request, slug, can_export)
    job = judge_job_by_id(pk=job_id)
    if job is None or job.judge.project_id != project.pk:
        raise Http404("No such judge job.")
    return render(request, "frontend/_judge_job.html", {"project": project, "job": judge_job_progress(job=job)})
