"""Calibration for leads: the standings table with open alerts and history, the calibration policy,
acknowledging alerts, standing overrides and recalibration, and the anchors (import, the
calibration set, one anchor's form)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from annotation.errors import Conflict, ValidationFailed
from annotation.models import FlawType, Strength
from annotation.permissions import can_lead
from calibration import selectors as calibration_selectors
from calibration.models import StandingState
from calibration.services.proposals import proposal_decide
from calibration.services.anchors import (
    ExpertAnswer,
    anchor_create,
    anchor_update,
    anchors_import,
    calibration_set_choose,
    calibration_set_coverage,
)
from calibration.services.policy import POLICY_FIELDS, policy_update
from calibration.services.standing import change_acknowledge, recalibration_assign, standing_override

from .common import lead_redirect, project_for


@login_required
def calibration_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    return render(
        request,
        "frontend/calibration.html",
        {
            "project": project,
            "rows": calibration_selectors.standings_table(project=project),
            "alerts": list(calibration_selectors.alerts_open(project=project)[:50]),
            "history": list(calibration_selectors.standing_history(project=project)[:40]),
            "policy": calibration_selectors.policy_read(project=project),
            "states": StandingState.choices,
            "proposals": calibration_selectors.flag_proposals_open(project=project),
        },
    )


@login_required
@require_POST
def calibration_proposal(request: HttpRequest, slug: str, proposal_id: int) -> HttpResponse:
    """A lead accepts (the standing changes, audited) or rejects a bias flag's proposal."""
    project = project_for(request, slug, can_lead)
    accept = request.POST.get("decision") == "accept"
    try:
        proposal = proposal_decide(proposal_id=proposal_id, project=project, accept=accept, actor=request.user,
                                   note=request.POST.get("note", ""))
    except Conflict as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{proposal.annotator.username}: {proposal.title} — "
                                  f"{'accepted, standing changed' if accept else 'rejected'}.")
    return lead_redirect(slug)


@login_required
@require_POST
def calibration_override(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    annotator = calibration_selectors.annotator_in_project(project=project, username=username)
    try:
        standing_override(project=project, annotator=annotator, to_state=request.POST.get("state", ""),
                          reason=request.POST.get("reason", ""), actor=request.user)
    except ValidationFailed as exc:
        messages.error(request, f"{username}: {exc.message}")
    else:
        messages.success(request, f"{username}'s standing changed.")
    return lead_redirect(slug)


@login_required
@require_POST
def calibration_recalibrate(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    annotator = calibration_selectors.annotator_in_project(project=project, username=username)
    try:
        recalibration_assign(project=project, annotator=annotator, assigned_by=request.user,
                             reason=request.POST.get("reason", ""))
    except ValidationFailed as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{username} has a fresh calibration round.")
    return lead_redirect(slug)


@login_required
@require_POST
def calibration_policy(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    changes: dict = {}
    for name in POLICY_FIELDS:
        if name == "show_hidden_feedback":
            changes[name] = request.POST.get(name) == "on"
        elif request.POST.get(name, "") != "":
            changes[name] = request.POST[name]
    try:
        policy_update(project=project, changes=changes)
    except ValidationFailed as exc:
        messages.error(request, "; ".join(f"{k}: {v}" for k, v in exc.field_errors.items()) or exc.message)
    else:
        messages.success(request, "Calibration settings saved.")
    return lead_redirect(slug)


@login_required
@require_POST
def calibration_acknowledge(request: HttpRequest, slug: str, change_id: int) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    change_acknowledge(project=project, change_id=change_id, lead=request.user)
    return lead_redirect(slug)


# ---------------------------------------------------------------- anchors


@login_required
def anchors_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    return render(
        request,
        "frontend/anchors.html",
        {
            "project": project,
            "rows": calibration_selectors.anchor_agreement(project=project),
            "coverage": calibration_set_coverage(project=project),
            "import_errors": request.session.pop("anchor_import_errors", None),
        },
    )


@login_required
@require_POST
def anchors_import_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "Choose a JSONL file first.")
        return lead_redirect(slug, "anchors")
    result = anchors_import(project=project, lines=upload, created_by=request.user)
    if result.ok:
        messages.success(request, f"Imported {result.created} anchors.")
    else:
        messages.error(request, f"Nothing was imported: {len(result.errors)} line(s) are invalid.")
        request.session["anchor_import_errors"] = result.errors[:200]
    return lead_redirect(slug, "anchors")


@login_required
@require_POST
def calibration_set_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    coverage = calibration_set_choose(project=project)
    messages.success(request, f"Calibration set chosen: {coverage['size']} anchors over {len(coverage['domains'])} domains.")
    return lead_redirect(slug, "anchors")


def _expert_from_post(post) -> ExpertAnswer:
    choice = post.get("choice", "")
    return ExpertAnswer(
        choice=choice,
        strength=post.get("strength", "") if choice in ("a", "b") else "",
        dimensions={key[4:]: value for key, value in post.items() if key.startswith("dim_") and value},
        explanation=post.get("explanation", ""),
        clear_cut=post.get("clear_cut") == "on",
        flaw_tags=tuple(post.getlist("flaw_tags")),
    )


def _anchor_form_context(project, item, *, anchor=None, form=None, errors=None, message="") -> dict:
    if form is None:
        form = {"choice": "", "strength": "", "explanation": "", "clear_cut": True, "dimensions": {},
                "in_calibration_set": False, "flaw_tags": []}
        if anchor is not None:
            form = {"choice": anchor.expert_choice, "strength": anchor.expert_strength,
                    "explanation": calibration_selectors.anchor_explanation_readings(
                        explanation=anchor.explanation)["author"],
                    "clear_cut": anchor.clear_cut, "flaw_tags": anchor.flaw_tags,
                    "dimensions": anchor.expert_dimension_choices, "in_calibration_set": anchor.in_calibration_set}
    return {
        "project": project,
        "item": item,
        "anchor": anchor,
        "history": calibration_selectors.anchor_history(anchor=anchor) if anchor else [],
        "readings": calibration_selectors.anchor_explanation_readings(explanation=anchor.explanation) if anchor else None,
        "form": form,
        "errors": errors or {},
        "message": message,
        "canonical_choices": [("a", "A better"), ("b", "B better"), ("tie", "Tie"), ("both_bad", "Both bad")],
        "strengths": Strength.choices,
        "flaw_types": FlawType.choices,
        "dimensions": [{**d, "value": form["dimensions"].get(d["key"], "")} for d in project.dimensions],
    }


def _posted_anchor_form(post) -> dict:
    answer = _expert_from_post(post)
    return {"choice": answer.choice, "strength": answer.strength, "explanation": answer.explanation,
            "clear_cut": answer.clear_cut, "dimensions": answer.dimensions, "flaw_tags": list(answer.flaw_tags),
            "in_calibration_set": post.get("in_calibration_set") == "on", "reason": post.get("reason", "")}


@login_required
def anchor_new(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    try:
        item_id = int(request.GET.get("item") or request.POST.get("item") or 0)
    except ValueError:
        item_id = 0
    item = calibration_selectors.item_for_anchor_form(project=project, item_id=item_id)
    if request.method != "POST":
        return render(request, "frontend/anchor_form.html", _anchor_form_context(project, item))
    form = _posted_anchor_form(request.POST)
    try:
        anchor = anchor_create(item=item, answer=_expert_from_post(request.POST), created_by=request.user,
                               in_calibration_set=form["in_calibration_set"])
    except (ValidationFailed, Conflict) as exc:
        ctx = _anchor_form_context(project, item, form=form, errors=exc.field_errors, message=exc.message)
        return render(request, "frontend/anchor_form.html", ctx, status=422)
    messages.success(request, f"Item {item.pk} is now anchor {anchor.pk}.")
    return lead_redirect(slug, "anchors")


@login_required
def anchor_edit(request: HttpRequest, slug: str, anchor_id: int) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    anchor = calibration_selectors.anchor_get(project=project, anchor_id=anchor_id)
    if request.method != "POST":
        return render(request, "frontend/anchor_form.html", _anchor_form_context(project, anchor.item, anchor=anchor))
    form = _posted_anchor_form(request.POST)
    try:
        anchor_update(anchor_id=anchor.pk, project=project, editor=request.user, reason=form["reason"],
                      answer=_expert_from_post(request.POST), in_calibration_set=form["in_calibration_set"],
                      active=request.POST.get("active") == "on")
    except ValidationFailed as exc:
        ctx = _anchor_form_context(project, anchor.item, anchor=anchor, form=form, errors=exc.field_errors,
                                   message=exc.message)
        return render(request, "frontend/anchor_form.html", ctx, status=422)
    messages.success(request, f"Anchor {anchor.pk} saved.")
    return lead_redirect(slug, "anchors")
