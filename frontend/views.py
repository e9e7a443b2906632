"""htmx pages. No business logic: each view checks the role, calls a service or selector, renders."""
from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from annotation import selectors
from annotation.errors import Conflict, ValidationFailed
from annotation.models import Strength
from annotation.permissions import can_annotate, can_export, can_import, can_lead, roles_of
from annotation.services.imports import import_job_create, import_job_progress
from annotation.services.judgments import JudgmentInput, judgment_submit
from annotation.services.projects import spec_publish
from annotation.services.routing import annotator_progress, assignment_next, assignment_skip
from rewards.formats import FORMATS
from rewards.selectors import AGGREGATIONS

from .markdown import render_markdown

CHOICE_LABELS = [("left", "A is better", "a"), ("right", "B is better", "b"), ("tie", "Tie", "t"), ("both_bad", "Both bad", "x")]
STRENGTH_LABELS = [(value, label, str(i + 1)) for i, (value, label) in enumerate(Strength.choices)]


def _project_for(request: HttpRequest, slug: str, check) -> object:
    project = selectors.project_get_for_member(slug=slug, user=request.user)
    if not check(user=request.user, project=project):
        raise PermissionDenied("Your role in this project does not allow this page.")
    return project


@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = [
        {
            "project": p,
            "roles": sorted(roles_of(user=request.user, project=p)),
            "can_annotate": can_annotate(user=request.user, project=p),
            "can_lead": can_lead(user=request.user, project=p),
            "can_export": can_export(user=request.user, project=p),
        }
        for p in selectors.projects_for_user(user=request.user)
    ]
    return render(request, "frontend/home.html", {"projects": projects})


@login_required
def label_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for(request, slug, can_annotate)
    spec_html = render_markdown(project.current_spec.text) if project.current_spec else ""
    return render(
        request,
        "frontend/label.html",
        {"project": project, "spec_html": spec_html, "choices": CHOICE_LABELS, "strengths": STRENGTH_LABELS},
    )


def _item_context(request, project, assignment, *, form=None, errors=None, message="") -> dict:
    payload = selectors.assignment_payload(assignment=assignment)
    form = form or {"client_token": str(uuid.uuid4()), "choice": "", "strength": "", "rationale": "", "dimensions": {}}
    return {
        "project": project,
        "item": payload,
        "form": form,
        "errors": errors or {},
        "message": message,
        "choices": CHOICE_LABELS,
        "strengths": STRENGTH_LABELS,
        "dimensions": [
            {**d, "value": form["dimensions"].get(d["key"], "")} for d in project.dimensions
        ],
        "progress": annotator_progress(project=project, annotator=request.user),
    }


def _render_next(request, project, *, status: int = 200) -> HttpResponse:
    assignment = assignment_next(project=project, annotator=request.user)
    if assignment is None:
        return render(
            request,
            "frontend/_done.html",
            {"project": project, "progress": annotator_progress(project=project, annotator=request.user)},
            status=status,
        )
    return render(request, "frontend/_item.html", _item_context(request, project, assignment), status=status)


@login_required
@require_POST
def label_next(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for(request, slug, can_annotate)
    return _render_next(request, project)


def _posted_form(request: HttpRequest, project) -> dict:
    post = request.POST
    return {
        "client_token": post.get("client_token", ""),
        "choice": post.get("choice", ""),
        "strength": post.get("strength", ""),
        "rationale": post.get("rationale", ""),
        "dimensions": {
            key: post[f"dim_{key}"] for key in project.dimension_keys if post.get(f"dim_{key}")
        },
        "time_spent_ms": post.get("time_spent_ms", "0"),
    }


@login_required
@require_POST
def label_submit(request: HttpRequest, slug: str, assignment_id: int) -> HttpResponse:
    project = _project_for(request, slug, can_annotate)
    form = _posted_form(request, project)
    assignment = selectors.assignment_for_annotator(assignment_id=assignment_id, annotator=request.user)
    try:
        client_token = uuid.UUID(form["client_token"])
        time_spent_ms = max(0, int(float(form["time_spent_ms"] or 0)))
    except ValueError:
        client_token, time_spent_ms = uuid.uuid4(), 0
        form["client_token"] = str(client_token)
    data = JudgmentInput(
        choice=form["choice"],
        strength=form["strength"] if form["choice"] in ("left", "right") else "",
        dimensions=form["dimensions"],
        rationale=form["rationale"],
        time_spent_ms=time_spent_ms,
    )
    try:
        judgment_submit(assignment_id=assignment.pk, annotator=request.user, data=data, client_token=client_token)
    except ValidationFailed as exc:
        # Everything typed comes back in the form: nothing is lost on a validation error.
        ctx = _item_context(request, project, assignment, form=form, errors=exc.field_errors, message=exc.message)
        return render(request, "frontend/_item.html", ctx, status=422)
    except Conflict as exc:
        ctx = _item_context(request, project, assignment, form=form, message=exc.message)
        return render(request, "frontend/_item.html", ctx, status=409)
    return _render_next(request, project)


@login_required
@require_POST
def label_skip(request: HttpRequest, slug: str, assignment_id: int) -> HttpResponse:
    project = _project_for(request, slug, can_annotate)
    assignment = selectors.assignment_for_annotator(assignment_id=assignment_id, annotator=request.user)
    assignment_skip(assignment_id=assignment.pk, annotator=request.user)
    return _render_next(request, project)


@login_required
def lead_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for(request, slug, can_lead)
    return render(
        request,
        "frontend/lead.html",
        {"project": project, "overview": selectors.project_overview(project=project)},
    )


@login_required
@require_POST
def lead_spec(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for(request, slug, can_lead)
    text = request.POST.get("text", "")
    if not text.strip():
        return render(request, "frontend/_spec_result.html", {"error": "The spec cannot be empty.", "text": text}, status=422)
    spec = spec_publish(project=project, text=text, created_by=request.user)
    return render(request, "frontend/_spec_result.html", {"spec": spec, "text": text})


@login_required
@require_POST
def lead_import(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for(request, slug, can_import)
    upload = request.FILES.get("file")
    if upload is None:
        return render(request, "frontend/_import_job.html", {"error": "Choose a JSONL file first."}, status=422)
    job = import_job_create(project=project, upload=upload, created_by=request.user)
    return render(request, "frontend/_import_job.html", {"job": job})


@login_required
def import_status(request: HttpRequest, job_id: int) -> HttpResponse:
    job = import_job_progress(job=selectors.import_job_get(job_id=job_id, user=request.user))
    return render(request, "frontend/_import_job.html", {"job": job})


@login_required
def export_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for(request, slug, can_export)
    return render(
        request,
        "frontend/export.html",
        {"project": project, "formats": FORMATS, "aggregations": AGGREGATIONS},
    )
