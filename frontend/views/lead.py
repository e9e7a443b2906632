"""The lead's project page (overview, spec publishing, imports with their progress and retry) and
the export page (leads and engineers)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from annotation import history, selectors
from annotation.errors import ValidationFailed
from annotation.permissions import can_export, can_import, can_lead
from annotation.rubrics import parse_rubrics
from annotation.services.imports import import_job_create, import_job_progress, import_job_retry
from annotation.services.jobs import JobStateError
from annotation.services.projects import SETTING_RANGES, daily_goal_set, project_settings_update, spec_publish
from calibration.selectors import annotator_in_project
from calibration.services.dynamic_k import routing_update
from rewards.formats import FORMATS, TAGS
from rewards.selectors import AGGREGATIONS, export_overview, export_sources, reward_model_get, reward_models_of
from annotation.services.production import feedback_intake, feedback_policy_update, policy_of
from annotation.services.tokens import feedback_token_create
from training.services.item_scores import item_scoring_latest, item_scoring_request

from .common import posted_id, project_for


@login_required
def lead_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    overview = selectors.project_overview(project=project)
    return render(request, "frontend/lead.html", {
        "project": project, "overview": overview, "intake": feedback_intake(project=project)})


@login_required
def import_page(request: HttpRequest, slug: str) -> HttpResponse:
    """Import items from a JSONL file, with the recent imports updating themselves."""
    project = project_for(request, slug, can_import)
    imports = selectors.imports_recent(project=project)
    return render(request, "frontend/import.html", {
        "project": project, "imports": imports, "imports_busy": selectors.imports_busy(imports)})


@login_required
@require_http_methods(["GET", "POST"])
def settings_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The project's settings (leads): name, description, rationale minimum, lease, edit window and
    the default daily goal, all saved together or not at all; annotators' own goals below."""
    project = project_for(request, slug, can_lead)
    errors: dict = {}
    form = {field: getattr(project, field) for field in ("name", "description", *SETTING_RANGES)}
    status = 200
    if request.method == "POST":
        form = {field: request.POST.get(field, "") for field in form}
        try:
            project_settings_update(project=project, data=form)
        except ValidationFailed as exc:
            errors, status = exc.field_errors, 422
        else:
            messages.success(request, "Settings saved.")
            return redirect("settings", slug=project.slug)
    return _settings(request, project, form=form, errors=errors, status=status)


def _settings(request: HttpRequest, project, *, status: int = 200, **extra) -> HttpResponse:
    form = extra.pop("form", None) or {field: getattr(project, field) for field in ("name", "description", *SETTING_RANGES)}
    response = render(request, "frontend/settings.html", {
        "project": project, "form": form, "errors": extra.pop("errors", {}), "ranges": SETTING_RANGES,
        "goals": history.annotator_goals(project=project), "reward_models": list(reward_models_of(project=project)),
        "scoring": item_scoring_latest(project=project), "feedback_policy": policy_of(project=project), **extra},
        status=status)
    if "feedback_secret" in extra:
        response["Cache-Control"] = "no-store"  # the secret is in this answer only
    return response


@login_required
@require_POST
def settings_feedback(request: HttpRequest, slug: str) -> HttpResponse:
    """The production-feedback sampling policy (annotation/services/production.py), all or nothing."""
    project = project_for(request, slug, can_lead)
    try:
        changes = {"keep_share": float(request.POST.get("keep_share", "")),
                   "daily_cap": int(request.POST.get("daily_cap", "")),
                   "domain_daily_cap": int(request.POST.get("domain_daily_cap", "")),
                   "dedupe": request.POST.get("dedupe") == "on"}
        feedback_policy_update(project=project, changes=changes)
    except ValueError:
        messages.error(request, "Enter numbers for the share kept and the caps.")
    except ValidationFailed as exc:
        messages.error(request, "; ".join(f"{k}: {v}" for k, v in exc.field_errors.items()))
    else:
        messages.success(request, "Production feedback policy saved.")
    return redirect(reverse("settings", args=[project.slug]) + "#feedback")


@login_required
@require_POST
def settings_feedback_token(request: HttpRequest, slug: str) -> HttpResponse:
    """Issue a token for the product's backend: this project's feedback intake only. Shown once."""
    project = project_for(request, slug, can_lead)
    token, secret = feedback_token_create(project=project, lead=request.user, name=request.POST.get("name", ""))
    return _settings(request, project, feedback_secret=secret, feedback_token=token)


@login_required
@require_POST
def settings_routing(request: HttpRequest, slug: str) -> HttpResponse:
    """Dynamic k on or off, its floor and its stop confidence (calibration/services/dynamic_k.py);
    every live comparison's target follows at once."""
    project = project_for(request, slug, can_lead)
    try:
        changes = {"dynamic_k": request.POST.get("dynamic_k") == "on",
                   "k_min": int(request.POST.get("k_min", project.k_min)),
                   "stop_confidence": float(request.POST.get("stop_confidence", project.stop_confidence))}
        routing_update(project=project, changes=changes)
    except ValueError:
        messages.error(request, "Enter numbers for the fewest judgments and the stop confidence.")
    except ValidationFailed as exc:
        messages.error(request, "; ".join(f"{k}: {v}" for k, v in exc.field_errors.items()) or exc.message)
    else:
        messages.success(request, "Judgments per comparison saved; every open comparison follows them now.")
    return redirect(reverse("settings", args=[project.slug]) + "#routing")


@login_required
@require_http_methods(["GET", "POST"])
def settings_rm_scores(request: HttpRequest, slug: str) -> HttpResponse:
    """The routing reward model (training/services/item_scores.py). POST: score every open comparison with
    the chosen model on a worker; GET: the latest scoring's progress (the settings page polls it)."""
    project = project_for(request, slug, can_lead)
    if request.method == "GET":
        return render(request, "frontend/_rm_scoring.html",
                      {"project": project, "scoring": item_scoring_latest(project=project)})
    chosen = request.POST.get("reward_model", "")
    reward_model = reward_model_get(project=project, pk=posted_id(chosen) or 0)
    try:
        mc = int(request.POST.get("mc_samples") or 8)
        item_scoring_request(project=project, reward_model=reward_model, mc_samples=mc, created_by=request.user)
    except ValueError:
        messages.error(request, "MC-dropout passes: a whole number.")
    except ValidationFailed as exc:
        messages.error(request, "; ".join(f"{k}: {v}" for k, v in exc.field_errors.items()))
    else:
        messages.success(request, f"Scoring the open comparisons with {reward_model.name} on a worker.")
    return redirect(reverse("settings", args=[project.slug]) + "#routing")


@login_required
@require_POST
def settings_goal(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    """A lead sets one annotator's daily goal (0 removes it; the project's default applies)."""
    project = project_for(request, slug, can_lead)
    annotator = annotator_in_project(project=project, username=username)
    try:
        daily_goal_set(project=project, user=annotator, target=request.POST.get("target", ""), set_by=request.user)
    except ValidationFailed as exc:
        messages.error(request, f"{username}: {exc.message}")
    else:
        messages.success(request, f"Daily goal for {username} saved.")
    return redirect("settings", slug=project.slug)


@login_required
def lead_imports(request: HttpRequest, slug: str) -> HttpResponse:
    """The lead page's "Recent imports" list, which polls this while an import in it runs (the
    imports alone: not the overview's counts over every item and judgment)."""
    project = project_for(request, slug, can_import)
    imports = selectors.imports_recent(project=project)
    return render(request, "frontend/_recent_imports.html",
                  {"project": project, "imports": imports, "imports_busy": selectors.imports_busy(imports)})


@login_required
@require_POST
def lead_spec(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    text = request.POST.get("text", "")
    if not text.strip():
        return render(request, "frontend/_spec_result.html", {"error": "The spec cannot be empty.", "text": text}, status=422)
    try:
        spec = spec_publish(project=project, text=text, created_by=request.user)
    except ValidationFailed as exc:
        return render(request, "frontend/_spec_result.html", {"error": exc.message, "text": text}, status=422)
    return render(request, "frontend/_spec_result.html",
                  {"spec": spec, "text": text, "rubrics": parse_rubrics(text).summary()})


@login_required
@require_POST
def lead_import(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_import)
    upload = request.FILES.get("file")
    if upload is None:
        return render(request, "frontend/_import_job.html", {"error": "Choose a JSONL file first."}, status=422)
    try:
        job = import_job_create(project=project, upload=upload, created_by=request.user)
    except ValidationFailed as exc:  # over IMPORT_MAX_FILE_BYTES: refused before it is stored
        return render(request, "frontend/_import_job.html", {"error": exc.message}, status=422)
    response = render(request, "frontend/_import_job.html", {"job": job})
    response["HX-Trigger"] = "importStarted"  # the "Recent imports" list fetches itself again
    return response


@login_required
def import_status(request: HttpRequest, job_id: int) -> HttpResponse:
    job = import_job_progress(job=selectors.import_job_get(job_id=job_id, user=request.user))
    return render(request, "frontend/_import_job.html", {"job": job})


@login_required
@require_POST
def import_retry(request: HttpRequest, job_id: int) -> HttpResponse:
    """Import a failed job's stored upload again; the new job replaces the old one's box."""
    job = selectors.import_job_get(job_id=job_id, user=request.user)
    project_for(request, job.project.slug, can_import)
    try:
        job = import_job_retry(job=job, user=request.user)
    except JobStateError as exc:
        return render(request, "frontend/_import_job.html", {"error": str(exc)}, status=409)
    return render(request, "frontend/_import_job.html", {"job": job})


@login_required
def export_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_export)
    sources = export_sources(project=project)
    return render(
        request,
        "frontend/export.html",
        {
            "project": project,
            "formats": FORMATS,
            "tags": TAGS,
            "aggregations": AGGREGATIONS,
            "exclusions": sources.left_out,
            "overview": export_overview(sources=sources),
        },
    )
