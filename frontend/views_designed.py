"""htmx pages for designed data: ranking, expert rewrites (with their review), adversarial
negatives, and the leads' and engineers' view of all three. No business logic: each view checks
the role, calls a service or selector of the annotation app, renders."""
from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation import selectors
from annotation.diffing import side_by_side
from annotation.errors import Conflict, NotAllowed, ValidationFailed
from annotation.models import BadCaseSource, FlawType, ItemKind, Rewrite
from annotation.permissions import can_annotate, can_lead, can_see_all_judgments
from annotation.ranking import letters
from annotation.services.badcases import bad_case_report
from annotation.services.negatives import NegativeInput, negative_submit
from annotation.services.projects import skills_set
from annotation.services.rankings import RankingInput, ranking_submit
from annotation.services.rewrites import (
    RewriteInput, rewrite_approve, rewrite_return, rewrite_revise, rewrite_submit,
)
from annotation.services.routing import annotator_progress

from .access import project_for as _project_for, time_spent_ms


def _token(form: dict) -> uuid.UUID:
    try:
        return uuid.UUID(form["client_token"])
    except ValueError:
        token = uuid.uuid4()
        form["client_token"] = str(token)
        return token


def _time_spent(post) -> int:
    return time_spent_ms(post.get("time_spent_ms"))


def _fresh_token() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------- work pages (annotators)


def work_context(request, project, assignment, *, form=None, errors=None, message="") -> tuple[str, dict]:
    """(template, context) for a leased item that is not a comparison."""
    payload = selectors.assignment_payload(assignment=assignment)
    kind = payload["kind"]
    ctx = {
        "project": project,
        "item": payload,
        "errors": errors or {},
        "message": message,
        "progress": annotator_progress(project=project, annotator=request.user),
        "skip_url": reverse("label-skip", args=[project.slug, assignment.handle]),
        "draft_key": f"a{assignment.handle}",
        "assignment_handle": assignment.handle,
    }
    if kind == "ranking":
        order = form["order"] if form else ""
        ctx.update(
            form=form or {"client_token": _fresh_token(), "order": "", "rationale": ""},
            submit_url=reverse("label-rank", args=[project.slug, assignment.handle]),
            initial_order=order or ">".join(letters(len(payload["responses"]))),
        )
        return "frontend/_ranking.html", ctx
    original = payload["response"]["text"]
    if kind == "rewrite":
        form = form or {"client_token": _fresh_token(), "text": original, "flaws": [], "rationale": "", "from_scratch": False}
        ctx.update(
            form=form, original=original, flaws=payload["flaws"],
            submit_url=reverse("label-rewrite", args=[project.slug, assignment.handle]),
            diff=side_by_side(original, form["text"]),
        )
        return "frontend/_rewrite.html", ctx
    form = form or {"client_token": _fresh_token(), "text": original, "flaw_type": "", "rationale": ""}
    ctx.update(
        form=form, original=original, flaw_types=FlawType.choices,
        submit_url=reverse("label-negative", args=[project.slug, assignment.handle]),
    )
    return "frontend/_adversarial.html", ctx


def revise_context(request, project, rewrite: Rewrite, *, form=None, errors=None, message="") -> dict:
    """A rewrite a reviewer sent back: its author's form, with the reviewer's comment."""
    original = rewrite.item.response_a.text
    form = form or {
        "client_token": "", "text": rewrite.text, "flaws": rewrite.flaws, "rationale": rewrite.rationale,
        "from_scratch": rewrite.from_scratch,
    }
    return {
        "project": project,
        "item": {"kind": "rewrite", "prompt": rewrite.item.prompt.messages},
        "rewrite": rewrite,
        "form": form,
        "errors": errors or {},
        "message": message,
        "original": original,
        "flaws": project.rewrite_flaws,
        "diff": side_by_side(original, form["text"]),
        "submit_url": reverse("label-rewrite-revise", args=[project.slug, rewrite.pk]),
        "draft_key": f"r{rewrite.pk}v{rewrite.revision}",
        "assignment_handle": rewrite.assignment.handle,
        "progress": annotator_progress(project=project, annotator=request.user),
    }


def render_returned_rewrite(request, project, *, status: int = 200) -> HttpResponse | None:
    """A sent-back rewrite comes before new work; None when the annotator has none."""
    rewrite = selectors.rewrite_returned_next(project=project, author=request.user)
    if rewrite is None:
        return None
    return render(request, "frontend/_rewrite.html", revise_context(request, project, rewrite), status=status)


def _render_next(request, project, *, status: int = 200) -> HttpResponse:
    from .views import render_next  # the one "what comes next" path, shared with comparisons

    return render_next(request, project, status=status)


def _rerender(request, project, assignment, form: dict, *, errors=None, message="", status=422):
    template, ctx = work_context(request, project, assignment, form=form, errors=errors, message=message)
    return render(request, template, ctx, status=status)


def _submit(request, project, assignment, form: dict, call) -> HttpResponse:
    """Run a submit; on a refusal, everything typed comes back in the form."""
    try:
        call()
    except ValidationFailed as exc:
        return _rerender(request, project, assignment, form, errors=exc.field_errors, message=exc.message)
    except Conflict as exc:
        return _rerender(request, project, assignment, form, message=exc.message, status=409)
    except NotAllowed:
        return _render_next(request, project, status=403)  # standing changed: it says why
    return _render_next(request, project)


@login_required
@require_POST
def label_rank(request: HttpRequest, slug: str, handle: str) -> HttpResponse:
    project = _project_for(request, slug, can_annotate)
    assignment = selectors.assignment_for_annotator(handle=handle, annotator=request.user)
    post = request.POST
    form = {"client_token": post.get("client_token", ""), "order": post.get("order", ""), "rationale": post.get("rationale", "")}
    token = _token(form)
    # Built inside the submit so a bad time spent comes back as a field error (see _submit).
    return _submit(request, project, assignment, form, lambda: ranking_submit(
        assignment_id=assignment.pk, annotator=request.user, client_token=token,
        data=RankingInput(order=form["order"], rationale=form["rationale"], time_spent_ms=_time_spent(post))))


def _rewrite_form(post) -> dict:
    return {
        "client_token": post.get("client_token", ""),
        "text": post.get("text", ""),
        "flaws": post.getlist("flaws"),
        "rationale": post.get("rationale", ""),
        "from_scratch": post.get("from_scratch") in ("1", "on", "true"),
    }


def _rewrite_input(form: dict, post) -> RewriteInput:
    return RewriteInput(
        text=form["text"], flaws=form["flaws"], rationale=form["rationale"], from_scratch=form["from_scratch"],
        time_spent_ms=_time_spent(post),
    )


@login_required
@require_POST
def label_rewrite(request: HttpRequest, slug: str, handle: str) -> HttpResponse:
    project = _project_for(request, slug, can_annotate)
    assignment = selectors.assignment_for_annotator(handle=handle, annotator=request.user)
    form = _rewrite_form(request.POST)
    token = _token(form)
    return _submit(request, project, assignment, form, lambda: rewrite_submit(
        assignment_id=assignment.pk, author=request.user, data=_rewrite_input(form, request.POST), client_token=token))


@login_required
@require_POST
def label_rewrite_revise(request: HttpRequest, slug: str, rewrite_id: int) -> HttpResponse:
    project = _project_for(request, slug, can_annotate)
    rewrite = selectors.rewrite_for_author(rewrite_id=rewrite_id, author=request.user)
    form = _rewrite_form(request.POST)
    try:
        rewrite_revise(rewrite_id=rewrite.pk, author=request.user, data=_rewrite_input(form, request.POST))
    except NotAllowed:
        return _render_next(request, project, status=403)
    except (ValidationFailed, Conflict) as exc:
        ctx = revise_context(request, project, rewrite, form=form, errors=getattr(exc, "field_errors", None), message=exc.message)
        return render(request, "frontend/_rewrite.html", ctx, status=exc.status_code)
    return _render_next(request, project)


@login_required
@require_POST
def label_diff(request: HttpRequest, slug: str, handle: str) -> HttpResponse:
    """The live side-by-side diff while an expert edits (original from their own assignment)."""
    _project_for(request, slug, can_annotate)
    assignment = selectors.assignment_for_annotator(handle=handle, annotator=request.user)
    payload = selectors.assignment_payload(assignment=assignment)
    original = payload.get("response", {}).get("text", "")
    return render(request, "frontend/_diff.html", {"diff": side_by_side(original, request.POST.get("text", ""))})


@login_required
@require_POST
def label_negative(request: HttpRequest, slug: str, handle: str) -> HttpResponse:
    project = _project_for(request, slug, can_annotate)
    assignment = selectors.assignment_for_annotator(handle=handle, annotator=request.user)
    post = request.POST
    form = {"client_token": post.get("client_token", ""), "text": post.get("text", ""),
            "flaw_type": post.get("flaw_type", ""), "rationale": post.get("rationale", "")}
    token = _token(form)
    return _submit(request, project, assignment, form, lambda: negative_submit(
        assignment_id=assignment.pk, author=request.user, client_token=token,
        data=NegativeInput(text=form["text"], flaw_type=form["flaw_type"], rationale=form["rationale"],
                           time_spent_ms=_time_spent(post))))


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
    project = _project_for(request, slug, _can_review)
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
    project = _project_for(request, slug, _can_review)
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
    project = _project_for(request, slug, can_see_all_judgments)
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
    """Leads browse items to mark any response as a bad case."""
    project = _project_for(request, slug, can_lead)
    kind = request.GET.get("kind", "")
    if kind not in ItemKind.values:
        kind = ""
    query = request.GET.get("q", "").strip()[:200]
    return render(request, "frontend/items.html", {
        "project": project, "rows": selectors.items_for_lead(project=project, kind=kind, query=query),
        "kind": kind, "query": query, "kinds": ItemKind.choices,
    })


@login_required
@require_POST
def bad_case_mark(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for(request, slug, can_lead)
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
    project = _project_for(request, slug, can_lead)
    user = selectors.member_by_username(project=project, username=username)
    raw = request.POST.get("skills", "")
    try:
        skills = skills_set(project=project, user=user, skills=[s for s in raw.replace(";", ",").split(",")])
    except ValidationFailed as exc:
        messages.error(request, f"{username}: {exc.message}")
    else:
        messages.success(request, f"{username}: skills {', '.join(skills) or 'none'}.")
    return redirect(reverse("designed", args=[slug]))
