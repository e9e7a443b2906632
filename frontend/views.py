"""htmx pages. No business logic: each view checks the role, calls a service or selector, renders."""
from __future__ import annotations

import json
import uuid

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation import selectors
from annotation.errors import Conflict, NotAllowed, ValidationFailed
from annotation.models import ItemKind, Strength
from annotation.permissions import (
    can_annotate, can_export, can_import, can_lead, can_see_all_judgments, roles_of,
)
from annotation.services.imports import import_job_create, import_job_progress, import_job_retry
from annotation.services.jobs import JobStateError
from annotation.services.judgments import JudgmentInput
from annotation.untrusted import load_json
from annotation.services.projects import spec_publish
from annotation.services.quarantine import served_renderable
from annotation.services.routing import annotator_progress, assignment_skip
from calibration import analytics_tables
from calibration import selectors as calibration_selectors
from calibration.after_response import AfterResponse
from calibration.errors import CalibrationRequired
from calibration.models import StandingState
from calibration.services.anchors import (
    ExpertAnswer,
    anchor_create,
    anchor_update,
    anchors_import,
    calibration_set_choose,
    calibration_set_coverage,
)
from calibration.services.analytics import (
    ANALYTICS_FIELDS, analytics_policy_update, snapshot_fresh, snapshot_refresh_if_stale, snapshot_request,
)
from calibration.services.policy import POLICY_FIELDS, policy_update
from calibration.services.queue import calibration_answer, question_next, queue_next, queue_submit
from calibration.services.standing import change_acknowledge, recalibration_assign, standing_override
from rewards.formats import FORMATS, TAGS
from rewards.selectors import AGGREGATIONS, export_exclusions

from .access import project_for as _project_for, time_spent_ms
from .markdown import render_markdown
from .views_designed import render_returned_rewrite, work_context

CHOICE_LABELS = [("left", "A is better", "a"), ("right", "B is better", "b"), ("tie", "Tie", "t"), ("both_bad", "Both bad", "x")]
STRENGTH_LABELS = [(value, label, str(i + 1)) for i, (value, label) in enumerate(Strength.choices)]


@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = [
        {
            "project": p,
            "roles": sorted(roles_of(user=request.user, project=p)),
            "can_annotate": can_annotate(user=request.user, project=p),
            "can_lead": can_lead(user=request.user, project=p),
            "can_export": can_export(user=request.user, project=p),
            "can_review": selectors.can_review_any_rewrite(user=request.user, project=p),
        }
        for p in selectors.projects_for_user(user=request.user)
    ]
    # Leads and engineers (of any project) may hold API tokens (annotation.services.tokens.can_hold_tokens).
    token_holder = request.user.is_superuser or any({"lead", "engineer"} & set(row["roles"]) for row in projects)
    return render(request, "frontend/home.html", {"projects": projects, "token_holder": token_holder})


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
    project = _project_for(request, slug, can_annotate)
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
    project = _project_for(request, slug, can_annotate)
    form = _posted_form(request, project)
    assignment = selectors.assignment_for_annotator(handle=handle, annotator=request.user)
    try:
        client_token = uuid.UUID(form["client_token"])
    except ValueError:
        client_token = uuid.uuid4()
        form["client_token"] = str(client_token)
    later = AfterResponse()  # hidden-anchor scoring runs after the response (same timing as live)
    try:
        data = _judgment_input(form, _time_spent(form))  # a bad time spent is a field error, as in the API
        outcome = queue_submit(
            assignment_id=assignment.pk, annotator=request.user, data=data, client_token=client_token, defer=later
        )
    except ValidationFailed as exc:
        # Everything typed comes back in the form: nothing is lost on a validation error.
        ctx = _item_context(request, project, assignment, form=form, errors=exc.field_errors, message=exc.message)
        return render(request, "frontend/_item.html", ctx, status=422)
    except Conflict as exc:
        ctx = _item_context(request, project, assignment, form=form, message=exc.message)
        return render(request, "frontend/_item.html", ctx, status=409)
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
    project = _project_for(request, slug, can_annotate)
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
    project = _project_for(request, slug, can_annotate)
    assignment = selectors.assignment_for_annotator(handle=handle, annotator=request.user)
    try:
        assignment_skip(assignment_id=assignment.pk, annotator=request.user)
    except NotAllowed:
        return render_next(request, project, status=403)
    return render_next(request, project)


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
    try:
        job = import_job_create(project=project, upload=upload, created_by=request.user)
    except ValidationFailed as exc:  # over IMPORT_MAX_FILE_BYTES: refused before it is stored
        return render(request, "frontend/_import_job.html", {"error": exc.message}, status=422)
    return render(request, "frontend/_import_job.html", {"job": job})


@login_required
def import_status(request: HttpRequest, job_id: int) -> HttpResponse:
    job = import_job_progress(job=selectors.import_job_get(job_id=job_id, user=request.user))
    return render(request, "frontend/_import_job.html", {"job": job})


@login_required
@require_POST
def import_retry(request: HttpRequest, job_id: int) -> HttpResponse:
    """Import a failed job's stored upload again; the new job replaces the old one's box."""
    job = selectors.import_job_get(job_id=job_id, user=request.user)
    _project_for(request, job.project.slug, can_import)
    try:
        job = import_job_retry(job=job, user=request.user)
    except JobStateError as exc:
        return render(request, "frontend/_import_job.html", {"error": str(exc)}, status=409)
    return render(request, "frontend/_import_job.html", {"job": job})


@login_required
def export_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for(request, slug, can_export)
    return render(
        request,
        "frontend/export.html",
        {
            "project": project,
            "formats": FORMATS,
            "tags": TAGS,
            "aggregations": AGGREGATIONS,
            "exclusions": export_exclusions(project=project),
        },
    )


# ---------------------------------------------------------------- calibration (leads)


def _lead_redirect(slug: str, name: str = "calibration") -> HttpResponse:
    return redirect(reverse(name, args=[slug]))


@login_required
def calibration_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for(request, slug, can_lead)
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
        },
    )


@login_required
@require_POST
def calibration_override(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    project = _project_for(request, slug, can_lead)
    annotator = calibration_selectors.annotator_in_project(project=project, username=username)
    try:
        standing_override(project=project, annotator=annotator, to_state=request.POST.get("state", ""),
                          reason=request.POST.get("reason", ""), actor=request.user)
    except ValidationFailed as exc:
        messages.error(request, f"{username}: {exc.message}")
    else:
        messages.success(request, f"{username}'s standing changed.")
    return _lead_redirect(slug)


@login_required
@require_POST
def calibration_recalibrate(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    project = _project_for(request, slug, can_lead)
    annotator = calibration_selectors.annotator_in_project(project=project, username=username)
    try:
        recalibration_assign(project=project, annotator=annotator, assigned_by=request.user,
                             reason=request.POST.get("reason", ""))
    except ValidationFailed as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{username} has a fresh calibration round.")
    return _lead_redirect(slug)


@login_required
@require_POST
def calibration_policy(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for(request, slug, can_lead)
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
    return _lead_redirect(slug)


@login_required
@require_POST
def calibration_acknowledge(request: HttpRequest, slug: str, change_id: int) -> HttpResponse:
    project = _project_for(request, slug, can_lead)
    change_acknowledge(project=project, change_id=change_id, lead=request.user)
    return _lead_redirect(slug)


@login_required
def anchors_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for(request, slug, can_lead)
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
    project = _project_for(request, slug, can_lead)
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "Choose a JSONL file first.")
        return _lead_redirect(slug, "anchors")
    result = anchors_import(project=project, lines=upload, created_by=request.user)
    if result.ok:
        messages.success(request, f"Imported {result.created} anchors.")
    else:
        messages.error(request, f"Nothing was imported: {len(result.errors)} line(s) are invalid.")
        request.session["anchor_import_errors"] = result.errors[:200]
    return _lead_redirect(slug, "anchors")


@login_required
@require_POST
def calibration_set_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for(request, slug, can_lead)
    coverage = calibration_set_choose(project=project)
    messages.success(request, f"Calibration set chosen: {coverage['size']} anchors over {len(coverage['domains'])} domains.")
    return _lead_redirect(slug, "anchors")


def _expert_from_post(post) -> ExpertAnswer:
    choice = post.get("choice", "")
    return ExpertAnswer(
        choice=choice,
        strength=post.get("strength", "") if choice in ("a", "b") else "",
        dimensions={key[4:]: value for key, value in post.items() if key.startswith("dim_") and value},
        explanation=post.get("explanation", ""),
        clear_cut=post.get("clear_cut") == "on",
    )


def _anchor_form_context(project, item, *, anchor=None, form=None, errors=None, message="") -> dict:
    if form is None:
        form = {"choice": "", "strength": "", "explanation": "", "clear_cut": True, "dimensions": {},
                "in_calibration_set": False}
        if anchor is not None:
            form = {"choice": anchor.expert_choice, "strength": anchor.expert_strength,
                    "explanation": calibration_selectors.anchor_explanation_readings(
                        explanation=anchor.explanation)["author"],
                    "clear_cut": anchor.clear_cut,
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
        "dimensions": [{**d, "value": form["dimensions"].get(d["key"], "")} for d in project.dimensions],
    }


def _posted_anchor_form(post) -> dict:
    answer = _expert_from_post(post)
    return {"choice": answer.choice, "strength": answer.strength, "explanation": answer.explanation,
            "clear_cut": answer.clear_cut, "dimensions": answer.dimensions,
            "in_calibration_set": post.get("in_calibration_set") == "on", "reason": post.get("reason", "")}


@login_required
def anchor_new(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for(request, slug, can_lead)
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
    return _lead_redirect(slug, "anchors")


@login_required
def anchor_edit(request: HttpRequest, slug: str, anchor_id: int) -> HttpResponse:
    project = _project_for(request, slug, can_lead)
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
    return _lead_redirect(slug, "anchors")


# ---------------------------------------------------------------- analytics dashboard


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


@login_required
def analytics_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for(request, slug, can_see_all_judgments)
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
    })


@login_required
@require_POST
def analytics_refresh(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for(request, slug, can_see_all_judgments)
    snapshot = snapshot_request(project=project, user=request.user)
    if request.htmx:
        return render(request, "frontend/_analytics_progress.html", {"project": project, "snapshot": snapshot})
    return _lead_redirect(slug, "analytics")


@login_required
def analytics_progress(request: HttpRequest, slug: str, snapshot_id: int) -> HttpResponse:
    project = _project_for(request, slug, can_see_all_judgments)
    snapshot = snapshot_fresh(
        snapshot=calibration_selectors.analytics_snapshot_progress(project=project, snapshot_id=snapshot_id))
    response = render(request, "frontend/_analytics_progress.html", {"project": project, "snapshot": snapshot})
    if snapshot.status in ("succeeded", "failed"):
        response["HX-Refresh"] = "true"
    return response


@login_required
def analytics_csv(request: HttpRequest, slug: str, table: str) -> HttpResponse:
    project = _project_for(request, slug, can_see_all_judgments)
    latest = calibration_selectors.analytics_state(project=project)["latest"]
    if table not in analytics_tables.TABLES or latest is None:
        raise Http404("No such table, or nothing computed yet.")
    response = HttpResponse(analytics_tables.table_csv(table, latest.payload), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-{table}.csv"'
    return response


@login_required
def analytics_annotator(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    project = _project_for(request, slug, can_see_all_judgments)
    latest = calibration_selectors.analytics_state(project=project)["latest"]
    row = next((r for r in (latest.payload.get("annotators", []) if latest else []) if r["username"] == username), None)
    if row is None:
        raise Http404("No analytics for this annotator yet.")
    return render(request, "frontend/analytics_annotator.html", {"project": project, "row": row, "snapshot": latest})


@login_required
@require_POST
def analytics_policy(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project_for(request, slug, can_lead)
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
    return _lead_redirect(slug, "analytics")
