"""Designed data for leads, engineers and reviewers: reviewing expert rewrites, the dataset view
(counts, bad cases, skills), the items list for marking bad cases, and skills. The annotators'
own designed work (ranking, rewrites, negatives) is in `labelling`."""
from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation import selectors
from annotation.diffing import side_by_side
from annotation.errors import Conflict, ValidationFailed
from annotation.models import BadCaseSource, ItemKind, ItemStatus, Rewrite
from annotation.permissions import can_lead, can_see_all_judgments
from annotation.services.badcases import bad_case_report
from annotation.services.projects import skills_set
from annotation.services.rewrites import rewrite_approve, rewrite_return

from .common import project_for


# ---------------------------------------------------------------- review (leads, second experts)


def _can_review(*, user, project) -> bool:
    return selectors.can_review_any_rewrite(user=user, project=project)


def _review_card(rewrite: Rewrite) -> dict:
    labels = {f["key"]: f["label"] for f in rewrite.project.rewrite_flaws}
    return {
        "rewrite": rewrite,
        "diff": side_by_side(rewrite.item.response_a.text, rewrite.text),
        "flaw_list": [labels.get(key, key) for key in rewrite.flaws],
    }


@login_required
def rewrites_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, _can_review)
    waiting = selectors.rewrites_reviewable_by(user=request.user, project=project)
    approved = selectors.rewrites_reviewable_by(user=request.user, project=project, status="approved")
    returned = selectors.rewrites_reviewable_by(user=request.user, project=project, status="returned")
    return render(request, "frontend/rewrites.html", {
        "project": project,
        "is_lead": can_lead(user=request.user, project=project),
        "cards": [_review_card(r) for r in waiting[:50]],
        "waiting": waiting.count(),
        "approved": list(approved.order_by("-reviewed_at")[:20]),
        "returned": list(returned[:20]),
    })


@login_required
@require_POST
def rewrite_review(request: HttpRequest, slug: str, rewrite_id: int) -> HttpResponse:
    project = project_for(request, slug, _can_review)
    rewrite = selectors.rewrite_get_for_reviewer(rewrite_id=rewrite_id, user=request.user, project=project)
    action, comment = request.POST.get("action", ""), request.POST.get("comment", "")
    error = ""
    try:
        if action == "approve":
            rewrite = rewrite_approve(rewrite_id=rewrite.pk, reviewer=request.user, comment=comment)
        elif action == "return":
            rewrite = rewrite_return(rewrite_id=rewrite.pk, reviewer=request.user, comment=comment)
        else:
            error = "Approve or send back."
    except (ValidationFailed, Conflict) as exc:
        error = exc.message
    ctx = {
        **_review_card(rewrite), "project": project, "error": error, "comment": comment,
        "is_lead": can_lead(user=request.user, project=project),
    }
    return render(request, "frontend/_review_card.html", ctx, status=422 if error else 200)


# ---------------------------------------------------------------- the dataset view


@login_required
def designed_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_see_all_judgments)
    overview = selectors.designed_data_overview(project=project)
    return render(request, "frontend/designed.html", {
        "project": project,
        "overview": overview,
        "source_rows": [(label, overview["bad_cases_by_source"].get(key, 0)) for key, label in BadCaseSource.choices],
        "is_lead": can_lead(user=request.user, project=project),
        "skills": selectors.skills_by_user(project=project),
        "bad_cases": list(selectors.bad_cases_of(project=project).select_related("response")[:30]),
    })


@login_required
def items_page(request: HttpRequest, slug: str) -> HttpResponse:
    """Leads browse items (filtered, paged) to mark any response as a bad case or make an anchor."""
    project = project_for(request, slug, can_lead)
    get = request.GET
    filters = {
        "kind": get.get("kind", "") if get.get("kind", "") in ItemKind.values else "",
        "query": get.get("q", "").strip()[:200],
        "domain": get.get("domain", "").strip()[:64],
        "status": get.get("status", "") if get.get("status", "") in ItemStatus.values else "",
        "anchor": get.get("anchor", "") if get.get("anchor", "") in ("yes", "no") else "",
    }
    page, rows = selectors.items_for_lead(project=project, page=get.get("page", 1), **filters)
    keep = {k: v for k, v in (("kind", filters["kind"]), ("q", filters["query"]), ("domain", filters["domain"]),
                              ("status", filters["status"]), ("anchor", filters["anchor"])) if v}
    return render(request, "frontend/items.html", {
        "project": project, "rows": rows, "page": page, "filters": filters, "kinds": ItemKind.choices,
        "statuses": ItemStatus.choices, "domains": selectors.project_domains(project=project),
        "query_string": urlencode(keep),
    })


@login_required
@require_POST
def bad_case_mark(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    try:
        response_id = int(request.POST.get("response", ""))
    except ValueError:
        messages.error(request, "Give the id of the response (a number).")
        return redirect(reverse("designed", args=[slug]))
    response = selectors.response_in_project(response_id=response_id, project=project)
    try:
        case, created = bad_case_report(
            project=project, response=response, source=BadCaseSource.LEAD, reported_by=request.user,
            note=request.POST.get("note", ""),
        )
    except Conflict as exc:
        if request.htmx:
            return render(request, "frontend/_bad_case_badge.html", {"error": exc.message}, status=409)
        messages.error(request, exc.message)
    else:
        if request.htmx:  # the button on the items page becomes a badge
            return render(request, "frontend/_bad_case_badge.html", {"case": case, "created": created})
        messages.success(
            request,
            f"Response {response_id} is a bad case; its rewrite task is in the queue." if created
            else f"Response {response_id} was already a bad case; your report is recorded.",
        )
    return redirect(reverse("designed", args=[slug]))


@login_required
@require_POST
def skills_update(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    user = selectors.member_by_username(project=project, username=username)
    raw = request.POST.get("skills", "")
    try:
        skills = skills_set(project=project, user=user, skills=[s for s in raw.replace(";", ",").split(",")])
    except ValidationFailed as exc:
        messages.error(request, f"{username}: {exc.message}")
    else:
        messages.success(request, f"{username}: skills {', '.join(skills) or 'none'}.")
    return redirect(reverse("designed", args=[slug]))
