"""The annotator's "My work": their own judgments of every kind (newest first, paged, no item ids),
comparisons editable within the project's edit window, and the session view (done today, the
daily goal, time on task, the break reminder). Gold is indistinguishable here: annotation.history."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from annotation import history
from annotation.errors import NotAllowed, ValidationFailed
from annotation.models import Strength
from annotation.permissions import can_annotate
from annotation.services.judgments import JudgmentInput, judgment_edit
from annotation.services.projects import daily_goal_set

from .common import project_for
from .labelling import CHOICE_LABELS, STRENGTH_LABELS, session_context


CHOICE_TEXT = {value: label for value, label, _key in CHOICE_LABELS}
STRENGTH_TEXT = dict(Strength.choices)


def _labelled(rows):
    for row in rows:
        if hasattr(row, "shown_choice"):
            row.choice_label = CHOICE_TEXT.get(row.shown_choice, row.shown_choice)
            row.strength_label = STRENGTH_TEXT.get(row.strength, "")
            row.dimension_list = [(label, CHOICE_TEXT.get(v, v)) for label, v in row.dimension_list]
    return rows


def _session_context(project, user) -> dict:
    return session_context(project=project, user=user)


@login_required
def my_work_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_annotate)
    kind = request.GET.get("kind", "comparisons")
    if kind not in history.KINDS:
        kind = "comparisons"
    counts = history.my_work_counts(project=project, annotator=request.user)
    page = history.my_work_page(project=project, annotator=request.user, kind=kind, page=request.GET.get("page", 1))
    _labelled(page.object_list)
    return render(request, "frontend/my_work.html", {
        "project": project,
        "kind": kind,
        "kinds": [(key, label, counts[key]) for key, (label, _model) in history.KINDS.items()],
        "page": page,
        **_session_context(project, request.user),
    })


def _row(project, request, judgment_id: int):
    row = history.my_judgment(project=project, annotator=request.user, judgment_id=judgment_id)
    if row is None:  # someone else's, or in another project: as if it did not exist
        raise Http404("No such judgment.")
    return _labelled([row])[0]


@login_required
@require_http_methods(["GET", "POST"])
def my_work_edit(request: HttpRequest, slug: str, judgment_id: int) -> HttpResponse:
    """GET: the edit form in place of the row; POST: save it (the previous version is kept in the
    judgment's history), or the form again with the errors and everything typed."""
    project = project_for(request, slug, can_annotate)
    row = _row(project, request, judgment_id)
    ctx = {"project": project, "row": row, "choices": CHOICE_LABELS, "strengths": STRENGTH_LABELS,
           "errors": {}, "message": ""}
    if request.method == "GET":
        if request.GET.get("show") == "row":  # "Cancel": the row as it is
            return render(request, "frontend/_my_row.html", ctx)
        if not row.editable:
            return render(request, "frontend/_my_row.html", {**ctx, "message": "The edit window has closed."}, status=409)
        ctx["form"] = {"choice": row.shown_choice, "strength": row.strength, "rationale": row.rationale,
                       "dimensions": row.shown_dimensions}
        return render(request, "frontend/_my_edit.html", _with_dimensions(project, ctx))
    post = request.POST
    form = {
        "choice": post.get("choice", ""),
        "strength": post.get("strength", ""),
        "rationale": post.get("rationale", ""),
        "dimensions": {k: post[f"dim_{k}"] for k in project.dimension_keys if post.get(f"dim_{k}")},
    }
    data = JudgmentInput(
        choice=form["choice"], strength=form["strength"] if form["choice"] in ("left", "right") else "",
        dimensions=form["dimensions"], rationale=form["rationale"],
    )
    try:
        judgment_edit(judgment_id=row.pk, editor=request.user, data=data)
    except ValidationFailed as exc:
        ctx.update(form=form, errors=exc.field_errors, message=exc.message)
        return render(request, "frontend/_my_edit.html", _with_dimensions(project, ctx), status=422)
    except NotAllowed as exc:
        ctx.update(form=form, errors={}, message=str(exc.message))
        return render(request, "frontend/_my_edit.html", _with_dimensions(project, ctx), status=409)
    row = _row(project, request, judgment_id)
    return render(request, "frontend/_my_row.html", {**ctx, "row": row, "message": "Saved."})


def _with_dimensions(project, ctx: dict) -> dict:
    chosen = ctx["form"]["dimensions"]
    ctx["dimensions"] = [{**d, "value": chosen.get(d["key"], "")} for d in project.dimensions]
    return ctx


@login_required
@require_POST
def my_goal(request: HttpRequest, slug: str) -> HttpResponse:
    """The annotator sets their own tasks-per-day goal (0 removes it)."""
    project = project_for(request, slug, can_annotate)
    error = ""
    try:
        daily_goal_set(project=project, user=request.user, target=request.POST.get("target", ""), set_by=request.user)
    except ValidationFailed as exc:
        error = exc.message
    ctx = {"project": project, "goal_error": error, **_session_context(project, request.user)}
    return render(request, "frontend/_session.html", ctx, status=422 if error else 200)
