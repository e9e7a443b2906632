"""htmx page for the red-team console (training/services/redteam.py): write a prompt and a response,
see what a reward model scores it at once (the scoring worker, polled every 100 ms until the score
is in), with a reference response's score and the percentile among that prompt's samples; submit a
high-scoring bad response as a hack; confirm or reject other people's hacks; the found-hacks board.
Leads, engineers, and annotators a lead lets in (on this page)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.errors import Conflict, NotAllowed, ValidationFailed
from annotation.models import FlawType
from annotation.permissions import can_lead
from rewards.selectors import reward_model_get, reward_models_of
from training.models import RL_KINDS
from training.selectors import redteam_access_of, redteam_attempt_get, redteam_hacks_pending, run_get, runs_of
from training.services.redteam import (
    attempt_create, attempt_fresh, can_redteam, hack_review, hack_submit, hacks_board, redteam_access_set,
)

from .common import posted_id, project_for


def _console_project(request: HttpRequest, slug: str):
    """Leads, engineers and annotators a lead let in; 403 for other members, 404 for non-members."""
    return project_for(request, slug, can_redteam)


@login_required
def redteam_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = _console_project(request, slug)
    return render(request, "frontend/redteam.html", {
        "project": project, "reward_models": list(reward_models_of(project=project)),
        "policy_runs": [r for r in runs_of(project=project) if r.kind in RL_KINDS],
        "board": hacks_board(project=project), "pending": redteam_hacks_pending(project=project),
        "flaws": FlawType.choices, "is_lead": can_lead(user=request.user, project=project),
        "access": redteam_access_of(project=project) if can_lead(user=request.user, project=project) else [],
    })


@login_required
@require_POST
def redteam_attempt_new(request: HttpRequest, slug: str) -> HttpResponse:
    project = _console_project(request, slug)
    chosen = request.POST.get("reward_model", "")
    reward_model = reward_model_get(project=project, pk=posted_id(chosen) or 0)
    run_id = request.POST.get("policy_run", "")
    policy_run = run_get(project=project, pk=posted_id(run_id) or 0)
    if run_id and policy_run is None:
        return render(request, "frontend/_redteam_attempt.html",
                      {"project": project, "errors": {"policy_run": "No such policy run in this project."}}, status=422)
    try:
        attempt = attempt_create(project=project, author=request.user, reward_model=reward_model,
                                 prompt=request.POST.get("prompt", ""), response=request.POST.get("response", ""),
                                 reference=request.POST.get("reference", ""), policy_run=policy_run)
    except ValidationFailed as exc:
        return render(request, "frontend/_redteam_attempt.html", {"project": project, "errors": exc.field_errors},
                      status=422)
    return render(request, "frontend/_redteam_attempt.html", {"project": project, "attempt": attempt,
                                                              "flaws": FlawType.choices})


def _own_attempt(request: HttpRequest, project, attempt_id: int):
    attempt = redteam_attempt_get(project=project, pk=attempt_id)
    if attempt is None or attempt.author_id != request.user.pk:
        raise Http404("No such attempt.")
    return attempt


@login_required
def redteam_attempt(request: HttpRequest, slug: str, attempt_id: int) -> HttpResponse:
    """One of the user's own attempts (the fragment polls this until its score is in)."""
    project = _console_project(request, slug)
    attempt = attempt_fresh(attempt=_own_attempt(request, project, attempt_id))
    return render(request, "frontend/_redteam_attempt.html", {"project": project, "attempt": attempt,
                                                              "flaws": FlawType.choices})


@login_required
@require_POST
def redteam_hack(request: HttpRequest, slug: str, attempt_id: int) -> HttpResponse:
    project = _console_project(request, slug)
    attempt = _own_attempt(request, project, attempt_id)
    context = {"project": project, "attempt": attempt, "flaws": FlawType.choices}
    try:
        context["hack"] = hack_submit(attempt=attempt, author=request.user, flaw_type=request.POST.get("flaw_type", ""),
                                      note=request.POST.get("note", ""))
    except ValidationFailed as exc:
        return render(request, "frontend/_redteam_attempt.html", {**context, "hack_errors": exc.field_errors},
                      status=422)
    except Conflict as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")
    return render(request, "frontend/_redteam_attempt.html", context)


@login_required
@require_POST
def redteam_review(request: HttpRequest, slug: str, hack_id: int) -> HttpResponse:
    project = _console_project(request, slug)
    try:
        hack = hack_review(hack_id=hack_id, project=project, reviewer=request.user,
                           confirm=request.POST.get("decision") == "confirm", note=request.POST.get("note", ""))
    except NotAllowed as exc:
        raise PermissionDenied(str(exc)) from None
    except Conflict as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")
    messages.success(request, f"Hack {hack.get_status_display().lower()}"
                     + (": it is now an adversarial pair, reference over hack." if hack.pair_id else "."))
    return redirect(reverse("redteam", args=[slug]) + "#board")


@login_required
@require_POST
def redteam_access(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_lead)
    try:
        redteam_access_set(project=project, lead=request.user, username=request.POST.get("username", "").strip(),
                           allowed=request.POST.get("allowed") != "no")
    except NotAllowed as exc:
        raise PermissionDenied(str(exc)) from None
    except ValidationFailed as exc:
        messages.error(request, "; ".join(exc.field_errors.values()))
    return redirect(reverse("redteam", args=[slug]) + "#access")
