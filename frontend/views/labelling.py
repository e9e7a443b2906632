"""The annotator's work page: pairwise comparisons, calibration questions (with their feedback),
designed work (ranking, expert rewrites and their revision after review, adversarial negatives)
and rubric evaluations. `render_next` is the one "what comes next" path for every kind of item."""
from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation import selectors
from annotation.history import BREAK_AFTER, BREAK_GAP, annotator_session
from annotation.after_response import AfterResponse
from annotation.diffing import side_by_side
from annotation.errors import Conflict, NotAllowed, ValidationFailed
from annotation.models import FlawType, ItemKind, Rewrite, RubricVerdict, Strength
from annotation.permissions import can_annotate
from annotation.ranking import letters
from annotation.services.judgments import JudgmentInput
from annotation.services.negatives import NegativeInput, negative_submit
from annotation.services.quarantine import served_renderable
from annotation.services.rankings import RankingInput, ranking_submit
from annotation.services.rewrites import RewriteInput, rewrite_revise, rewrite_submit
from annotation.services.rubric_evals import RubricInput, rubric_submit
from annotation.services.queue import queue_next, queue_skip, queue_submit
from annotation.services.routing import annotator_progress
from calibration import selectors as calibration_selectors
from calibration.errors import CalibrationRequired
from calibration.services.queue import calibration_answer, question_next

from ..markdown import render_markdown
from .common import project_for, time_spent_ms


CHOICE_LABELS = [("left", "A is better", "a"), ("right", "B is better", "b"), ("tie", "Tie", "t"), ("both_bad", "Both bad", "x")]
STRENGTH_LABELS = [(value, label, str(i + 1)) for i, (value, label) in enumerate(Strength.choices)]


# ---------------------------------------------------------------- comparisons and calibration questions


@login_required
def label_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_annotate)
    spec_html = render_markdown(project.current_spec.text) if project.current_spec else ""
    return render(
        request,
        "frontend/label.html",
        {"project": project, "spec_html": spec_html, **session_context(project=project, user=request.user)},
    )


def session_context(*, project, user) -> dict:
    """The "Today" panel (label page and My work): the session so far and the break rule."""
    return {"session": annotator_session(project=project, annotator=user),
            "break_gap_s": int(BREAK_GAP.total_seconds()), "break_after_s": int(BREAK_AFTER.total_seconds())}


def _item_context(request, project, assignment, *, form=None, errors=None, message="") -> dict:
    payload = selectors.assignment_payload(assignment=assignment)
    return {
        **_form_context(project, payload, form=form, errors=errors, message=message),
        "submit_url": reverse("label-submit", args=[project.slug, assignment.handle]),
        "skip_url": reverse("label-skip", args=[project.slug, assignment.handle]),
        "draft_key": f"a{assignment.handle}",
        "progress": annotator_progress(project=project, annotator=request.user),
    }


def _question_context(project, question, *, form=None, errors=None, message="") -> dict:
    payload = calibration_selectors.question_payload(question=question)
    return {
        **_form_context(project, payload, form=form, errors=errors, message=message),
        "submit_url": reverse("label-calibration-answer", args=[project.slug, question.pk]),
        "draft_key": f"q{question.pk}",
        "calibration": payload,
    }


def _form_context(project, payload: dict, *, form=None, errors=None, message="") -> dict:
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
    }


def render_next(request, project, *, status: int = 200) -> HttpResponse:
    """What the annotator works on next: a rewrite sent back to them (finishing their own work,
    before any new lease), else calibration while they are not active, else the next item of any
    kind."""
    returned = render_returned_rewrite(request, project, status=status)
    if returned is not None:
        return returned
    def show(assignment) -> HttpResponse:
        if assignment.item.kind != ItemKind.COMPARISON:
            template, ctx = work_context(request, project, assignment)
            return render(request, template, ctx, status=status)
        return render(request, "frontend/_item.html", _item_context(request, project, assignment), status=status)

    try:
        # An item that cannot be shown is quarantined for the lead and the next one is served.
        response = served_renderable(lambda: queue_next(project=project, annotator=request.user), show)
    except CalibrationRequired:
        return _render_calibration(request, project, status=status)
    if response is None:
        return render(
            request,
            "frontend/_done.html",
            {"project": project, "progress": annotator_progress(project=project, annotator=request.user)},
            status=status,
        )
    return response


def _render_calibration(request, project, *, status: int = 200) -> HttpResponse:
    """Not active yet: the next calibration question, or why there is none."""
    question = question_next(project=project, annotator=request.user)
    if question is not None:
        return render(request, "frontend/_item.html", _question_context(project, question), status=status)
    status_ = calibration_selectors.annotator_calibration_status(project=project, annotator=request.user)
    for missed in status_["missed"]:
        missed["expert_choice_label"] = SHOWN_LABELS.get(missed["expert_choice"], missed["expert_choice"])
        missed["your_choice_label"] = SHOWN_LABELS.get(missed["your_choice"], missed["your_choice"])
    return render(request, "frontend/_standing.html", {"project": project, "status": status_}, status=status)


SHOWN_LABELS = {"left": "A (left) is better", "right": "B (right) is better", "tie": "Tie", "both_bad": "Both bad"}


def _feedback_context(project, feedback: dict, *, your_choice: str = "") -> dict:
    your_choice = feedback.get("your_choice") or your_choice
    return {
        "project": project,
        "feedback": feedback,
        "expert_choice_label": SHOWN_LABELS.get(feedback["expert_choice"], feedback["expert_choice"]),
        "expert_strength_label": dict(Strength.choices).get(feedback["expert_strength"], ""),
        "your_choice_label": SHOWN_LABELS.get(your_choice, ""),
        "your_strength_label": dict(Strength.choices).get(feedback.get("your_strength", ""), ""),
        "expert_dimensions": [
            (key, SHOWN_LABELS.get(value, value)) for key, value in feedback["expert_dimensions"].items()
        ],
    }


@login_required
@require_POST
def label_next(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_annotate)
    return render_next(request, project)


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
def label_submit(request: HttpRequest, slug: str, handle: str) -> HttpResponse:
    project = project_for(request, slug, can_annotate)
    form = _posted_form(request, project)
    try:
        client_token = uuid.UUID(form["client_token"])
    except ValueError:
        client_token = uuid.uuid4()
        form["client_token"] = str(client_token)
    later = AfterResponse()  # hidden-anchor scoring runs after the response (same timing as live)

    def again(**shown):
        # Only on an error is the assignment looked up (someone else's is 404): the submit's own
        # locking query finds it otherwise.
        assignment = selectors.assignment_for_annotator(handle=handle, annotator=request.user)
        return _item_context(request, project, assignment, form=form, **shown)

    try:
        data = _judgment_input(form, _time_spent(form))  # a bad time spent is a field error, as in the API
        outcome = queue_submit(handle=handle, annotator=request.user, data=data, client_token=client_token, defer=later)
    except ValidationFailed as exc:
        # Everything typed comes back in the form: nothing is lost on a validation error.
        ctx = again(errors=exc.field_errors, message=exc.message)
        return render(request, "frontend/_item.html", ctx, status=422)
    except Conflict as exc:
        return render(request, "frontend/_item.html", again(message=exc.message), status=409)
    except NotAllowed:
        # Standing changed while the item was open: say why (the draft stays in the browser).
        return render_next(request, project, status=403)
    if outcome.feedback is not None:  # a hidden anchor, on a project that shows feedback
        ctx = _feedback_context(project, outcome.feedback, your_choice=form["choice"])
        return render(request, "frontend/_feedback.html", ctx)
    return later.attach(render_next(request, project))


def _judgment_input(form: dict, time_spent_ms: int) -> JudgmentInput:
    return JudgmentInput(
        choice=form["choice"],
        strength=form["strength"] if form["choice"] in ("left", "right") else "",
        dimensions=form["dimensions"],
        rationale=form["rationale"],
        time_spent_ms=time_spent_ms,
    )


def _time_spent(form: dict) -> int:
    return time_spent_ms(form["time_spent_ms"])


@login_required
@require_POST
def label_calibration_answer(request: HttpRequest, slug: str, question_id: int) -> HttpResponse:
    project = project_for(request, slug, can_annotate)
    form = _posted_form(request, project)
    try:
        data = _judgment_input(form, _time_spent(form))
        outcome = calibration_answer(question_id=question_id, annotator=request.user, data=data)
    except ValidationFailed as exc:
        question = calibration_selectors.question_for_annotator(question_id=question_id, annotator=request.user)
        ctx = _question_context(project, question, form=form, errors=exc.field_errors, message=exc.message)
        return render(request, "frontend/_item.html", ctx, status=422)
    except Conflict:
        return render_next(request, project)
    status_ = calibration_selectors.annotator_calibration_status(project=project, annotator=request.user)
    ctx = _feedback_context(project, outcome.feedback, your_choice=form["choice"])
    ctx.update(
        calibration={"round": outcome.round.number, **(status_["round"] or {})},
        finished=outcome.finished,
        state=outcome.state,
        reason=status_["reason"],
    )
    return render(request, "frontend/_feedback.html", ctx)


@login_required
@require_POST
def label_skip(request: HttpRequest, slug: str, handle: str) -> HttpResponse:
    project = project_for(request, slug, can_annotate)
    assignment = selectors.assignment_for_annotator(handle=handle, annotator=request.user)
    try:
        queue_skip(assignment_id=assignment.pk, annotator=request.user)
    except NotAllowed:
        return render_next(request, project, status=403)
    return render_next(request, project)


# ---------------------------------------------------------------- designed work (ranking, rewrites, negatives)


def _token(form: dict) -> uuid.UUID:
    try:
        return uuid.UUID(form["client_token"])
    except ValueError:
        token = uuid.uuid4()
        form["client_token"] = str(token)
        return token


def _post_time_spent(post) -> int:
    return time_spent_ms(post.get("time_spent_ms"))


def _fresh_token() -> str:
    return str(uuid.uuid4())


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
    if kind == "rubric":
        form = form or {"client_token": _fresh_token(), "answers": [""] * len(payload["checks"]), "rationale": ""}
        ctx.update(
            form=form, response_text=original, dimension=payload["dimension"],
            checks=[{"number": i + 1, "text": text, "value": form["answers"][i] if i < len(form["answers"]) else "",
                     "error": (errors or {}).get(f"check_{i + 1}", "")}
                    for i, text in enumerate(payload["checks"])],
            verdicts=RubricVerdict.choices,
            submit_url=reverse("label-rubric", args=[project.slug, assignment.handle]),
        )
        return "frontend/_rubric.html", ctx
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
        return render_next(request, project, status=403)  # standing changed: it says why
    return render_next(request, project)


@login_required
@require_POST
def label_rank(request: HttpRequest, slug: str, handle: str) -> HttpResponse:
    project = project_for(request, slug, can_annotate)
    assignment = selectors.assignment_for_annotator(handle=handle, annotator=request.user)
    post = request.POST
    form = {"client_token": post.get("client_token", ""), "order": post.get("order", ""), "rationale": post.get("rationale", "")}
    token = _token(form)
    # Built inside the submit so a bad time spent comes back as a field error (see _submit).
    return _submit(request, project, assignment, form, lambda: ranking_submit(
        assignment_id=assignment.pk, annotator=request.user, client_token=token,
        data=RankingInput(order=form["order"], rationale=form["rationale"], time_spent_ms=_post_time_spent(post))))


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
        time_spent_ms=_post_time_spent(post),
    )


@login_required
@require_POST
def label_rewrite(request: HttpRequest, slug: str, handle: str) -> HttpResponse:
    project = project_for(request, slug, can_annotate)
    assignment = selectors.assignment_for_annotator(handle=handle, annotator=request.user)
    form = _rewrite_form(request.POST)
    token = _token(form)
    return _submit(request, project, assignment, form, lambda: rewrite_submit(
        assignment_id=assignment.pk, author=request.user, data=_rewrite_input(form, request.POST), client_token=token))


@login_required
@require_POST
def label_rewrite_revise(request: HttpRequest, slug: str, rewrite_id: int) -> HttpResponse:
    project = project_for(request, slug, can_annotate)
    rewrite = selectors.rewrite_for_author(rewrite_id=rewrite_id, author=request.user)
    form = _rewrite_form(request.POST)
    try:
        rewrite_revise(rewrite_id=rewrite.pk, author=request.user, data=_rewrite_input(form, request.POST))
    except NotAllowed:
        return render_next(request, project, status=403)
    except (ValidationFailed, Conflict) as exc:
        ctx = revise_context(request, project, rewrite, form=form, errors=getattr(exc, "field_errors", None), message=exc.message)
        return render(request, "frontend/_rewrite.html", ctx, status=exc.status_code)
    return render_next(request, project)


@login_required
@require_POST
def label_diff(request: HttpRequest, slug: str, handle: str) -> HttpResponse:
    """The live side-by-side diff while an expert edits (original from their own assignment)."""
    project_for(request, slug, can_annotate)
    assignment = selectors.assignment_for_annotator(handle=handle, annotator=request.user)
    payload = selectors.assignment_payload(assignment=assignment)
    original = payload.get("response", {}).get("text", "")
    return render(request, "frontend/_diff.html", {"diff": side_by_side(original, request.POST.get("text", ""))})


@login_required
@require_POST
def label_negative(request: HttpRequest, slug: str, handle: str) -> HttpResponse:
    project = project_for(request, slug, can_annotate)
    assignment = selectors.assignment_for_annotator(handle=handle, annotator=request.user)
    post = request.POST
    form = {"client_token": post.get("client_token", ""), "text": post.get("text", ""),
            "flaw_type": post.get("flaw_type", ""), "rationale": post.get("rationale", "")}
    token = _token(form)
    return _submit(request, project, assignment, form, lambda: negative_submit(
        assignment_id=assignment.pk, author=request.user, client_token=token,
        data=NegativeInput(text=form["text"], flaw_type=form["flaw_type"], rationale=form["rationale"],
                           time_spent_ms=_post_time_spent(post))))


@login_required
@require_POST
def label_rubric(request: HttpRequest, slug: str, handle: str) -> HttpResponse:
    project = project_for(request, slug, can_annotate)
    assignment = selectors.assignment_for_annotator(handle=handle, annotator=request.user)
    post = request.POST
    payload = selectors.assignment_payload(assignment=assignment)
    if payload["kind"] != ItemKind.RUBRIC:  # a stale form: the item on lease comes back in its own form
        return render_next(request, project, status=409)
    checks = len(payload["checks"])
    form = {"client_token": post.get("client_token", ""), "rationale": post.get("rationale", ""),
            "answers": [post.get(f"check_{i + 1}", "") for i in range(checks)]}
    token = _token(form)
    return _submit(request, project, assignment, form, lambda: rubric_submit(
        assignment_id=assignment.pk, author=request.user, client_token=token,
        data=RubricInput(answers=form["answers"], rationale=form["rationale"], time_spent_ms=_post_time_spent(post))))
