"""The analytics dashboard: agreement and bias numbers computed in the background, their charts and
CSV tables, one annotator's row, and the analytics settings."""
from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.errors import ValidationFailed
from annotation.permissions import can_lead, can_see_all_judgments
from annotation.untrusted import load_json
from calibration import analytics_tables
from calibration import selectors as calibration_selectors
from calibration.services.custom_cues import custom_cue_check, custom_cue_remove, custom_cue_save
from calibration.services.analytics import (
    ANALYTICS_FIELDS, analytics_policy_update, snapshot_fresh, snapshot_refresh_if_stale, snapshot_request,
)

from .common import project_for


def _chart_data(payload: dict) -> dict:
    """Only what the charts draw, embedded with json_script (escaped, never executed)."""
    pairwise = payload.get("pairwise", {})
    health = payload.get("health", {})
    return {
        "time": [{"start": w["start"], "alpha": w["alpha_nominal"], "alpha_ordinal": w.get("alpha_ordinal"),
                  "judgments": w["judgments"], "units": w["units"]}
                 for w in payload.get("agreement", {}).get("time", [])],
        "kappa": {key: pairwise.get(key, []) for key in ("annotators", "kappa", "n", "low", "high")},
        "length": [{"username": r["username"], "rate": r["length"]["rate"], "pool": r["length"]["pool_rate"],
                    "n": r["length"]["n"], "flagged": any(f["kind"] == "length" for f in r["flags"])}
                   for r in payload.get("annotators", [])],
        "histogram": health.get("length", {}).get("histogram", {}),
        # Flip rates with their intervals, only where there are enough re-asks to show one.
        "consistency": [{"username": r["username"], "rate": r["flip_rate"], "low": r["ci_low"], "high": r["ci_high"],
                         "n": r["reasks"]}
                        for r in payload.get("consistency", {}).get("annotators", []) if r["shown"]],
        "domains": health.get("domains", []),
        "difficulty": health.get("difficulty", []),
    }


def _analytics_fields(policy) -> list[dict]:
    fields = []
    for name in ANALYTICS_FIELDS:
        field = policy._meta.get_field(name)
        value = getattr(policy, name)
        kind = "json" if name.endswith("_targets") else "number"
        fields.append({"name": name, "label": field.verbose_name.capitalize(), "help": field.help_text,
                       "value": json.dumps(value) if kind == "json" else value, "kind": kind})
    return fields


# The dashboard's sections, one at a time (it was one 8,700-px page).
SECTIONS = [("agreement", "Agreement"), ("annotators", "Annotators and bias"), ("discovery", "Discovered cues"),
            ("contested", "Contested items"),
            ("rankings", "Rankings"), ("health", "Dataset health"), ("settings", "Thresholds and targets")]
CONTESTED_PAGE = 25


@login_required
def analytics_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_see_all_judgments)
    section = request.GET.get("section", "agreement")
    if section not in dict(SECTIONS):
        section = "agreement"
    state = calibration_selectors.analytics_state(project=project)
    # The first visit, or one after new judgments with numbers over 10 minutes old, starts a
    # computation in the background; the page shows the stored numbers and the progress.
    state["pending"] = snapshot_refresh_if_stale(project=project, state=state, user=request.user)
    payload = state["latest"].payload if state["latest"] else {}
    return render(request, "frontend/analytics.html", {
        "project": project,
        "state": state,
        "payload": payload,
        "overall": payload.get("agreement", {}).get("overall", {}),
        "charts": _chart_data(payload) if payload else None,
        "can_lead": can_lead(user=request.user, project=project),
        "fields": _analytics_fields(calibration_selectors.analytics_policy_read(project=project)),
        "tables": list(analytics_tables.TABLES),
        "section": section,
        "custom_cues": calibration_selectors.analytics_policy_read(project=project).custom_cues,
        "sections": SECTIONS,
        "contested_page": Paginator(payload.get("contested", {}).get("items", []), CONTESTED_PAGE).get_page(
            request.GET.get("page", 1)),
    })


@login_required
@require_POST
def analytics_refresh(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_see_all_judgments)
    snapshot = snapshot_request(project=project, user=request.user)
    if request.htmx:
        return render(request, "frontend/_analytics_progress.html", {"project": project, "snapshot": snapshot})
    return redirect(reverse("analytics", args=[slug]) + "?section=settings")


@login_required
def analytics_progress(request: HttpRequest, slug: str, snapshot_id: int) -> HttpResponse:
    project = project_for(request, slug, can_see_all_judgments)
    snapshot = snapshot_fresh(
        snapshot=calibration_selectors.analytics_snapshot_progress(project=project, snapshot_id=snapshot_id))
    response = render(request, "frontend/_analytics_progress.html", {"project": project, "snapshot": snapshot})
    if snapshot.status in ("succeeded", "failed"):
        response["HX-Refresh"] = "true"
    return response


@login_required
def analytics_csv(request: HttpRequest, slug: str, table: str) -> HttpResponse:
    project = project_for(request, slug, can_see_all_judgments)
    latest = calibration_selectors.analytics_state(project=project)["latest"]
    if table not in analytics_tables.TABLES or latest is None:
        raise Http404("No such table, or nothing computed yet.")
    response = HttpResponse(analytics_tables.table_csv(table, latest.payload), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-{table}.csv"'
    return response


@login_required
def analytics_annotator(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    project = project_for(request, slug, can_see_all_judgments)
    latest = calibration_selectors.analytics_state(project=project)["latest"]
    row = next((r for r in (latest.payload.get("annotators", []) if latest else []) if r["username"] == username), None)
    if row is None:
        raise Http404("No analytics for this annotator yet.")
    return render(request, "frontend/analytics_annotator.html", {"project": project, "row": row, "snapshot": latest})


@login_required
@require_POST
def analytics_policy(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    changes = {}
    errors = {}
    for name in ANALYTICS_FIELDS:
        raw = request.POST.get(name, "")
        if name.endswith("_targets"):
            try:
                changes[name] = load_json(raw or "{}")  # typed by a person: untrusted, like any JSON
            except ValueError as exc:
                errors[name] = f'Not usable JSON ({exc}): write {{"name": share, ...}}.'
        elif raw != "":
            changes[name] = raw  # full_clean converts and validates
    try:
        if errors:
            raise ValidationFailed("Please fix the highlighted settings.", field_errors=errors)
        analytics_policy_update(project=project, changes=changes)
        messages.success(request, "Analytics settings saved. Refresh the numbers to apply them.")
    except ValidationFailed as exc:
        detail = "; ".join(f"{k}: {v}" for k, v in exc.field_errors.items())
        messages.error(request, f"{exc.message} {detail}")
    return redirect(reverse("analytics", args=[slug]) + "?section=settings")


@login_required
@require_POST
def analytics_cue(request: HttpRequest, slug: str) -> HttpResponse:
    """A lead's custom cue, checked at once and saved: who prefers responses that have it."""
    project = project_for(request, slug, can_lead)
    spec = {"name": request.POST.get("name", ""), "keywords": request.POST.get("keywords", ""),
            "pattern": request.POST.get("pattern", "")}
    try:
        result = custom_cue_check(project=project, spec=spec)
        custom_cue_save(project=project, spec=spec)
    except ValidationFailed as exc:
        return render(request, "frontend/_custom_cue_result.html",
                      {"project": project, "errors": exc.field_errors, "message": exc.message}, status=422)
    return render(request, "frontend/_custom_cue_result.html", {"project": project, "result": result})


@login_required
@require_POST
def analytics_cue_remove(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    custom_cue_remove(project=project, name=request.POST.get("name", ""))
    messages.success(request, "Cue removed; the next computation leaves it out.")
    return redirect(reverse("analytics", args=[slug]) + "?section=discovery")
