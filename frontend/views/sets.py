"""htmx pages for preference sets: the list with a freeze form, and one set's page (coverage
charts, warnings, downloads in every format, what changed since the previous version)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django_htmx.http import HttpResponseClientRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.permissions import can_export
from calibration.models import StandingState
from rewards.curation import AGGREGATIONS, BIAS_DROPS, JUDGE_LABELS, CurationPolicy
from rewards.formats import TAGS
from rewards.selectors import freeze_request_get, preference_set_get, preference_sets_of
from rewards.models import FreezeStatus
from annotation.services.jobs import JobStateError
from rewards.services.sets import PolicyError, freeze_progress, freeze_request, freeze_retry, preference_set_diff
from rewards.set_formats import FILE_EXTENSIONS, READER_ARGS, SET_FORMATS

from .common import project_for


def _shares(raw: str) -> dict[str, float]:
    """"coding=0.3, math=0.2" -> {"coding": 0.3, "math": 0.2}; a malformed part raises ValueError."""
    out = {}
    for part in raw.replace(";", ",").split(","):
        if part.strip():
            name, _, value = part.partition("=")
            out[name.strip()] = float(value)
    return out


def _optional(raw: str, kind=float):
    return kind(raw) if raw.strip() else None


def _policy_from_post(post) -> CurationPolicy:
    return CurationPolicy.from_dict({
        "standings": post.getlist("standings") or ["active"],
        "aggregation": post.get("aggregation", "dawid_skene"),
        "min_judgments": int(post.get("min_judgments") or 1),
        "min_confidence": float(post.get("min_confidence") or 0),
        "tags": post.getlist("tags") or list(TAGS),
        "test_fraction": float(post.get("test_fraction") or 0),
        "seed": int(post.get("seed") or 0),
        "dedupe": post.get("dedupe") == "on",
        "per_domain_cap": _optional(post.get("per_domain_cap", ""), int),
        "domain_targets": _shares(post.get("domain_targets", "")),
        "tag_targets": _shares(post.get("tag_targets", "")),
        "hard_share_min": _optional(post.get("hard_share_min", "")),
        "chosen_shorter_share": _optional(post.get("chosen_shorter_share", "")),
        "drop_biased": post.getlist("drop_biased"),
        "biased_weight": float(post.get("biased_weight") or 0),
        "judge_labels": post.get("judge_labels") or "exclude",
    })


@login_required
def sets_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug, can_export)
    if request.method == "POST":
        try:
            policy = _policy_from_post(request.POST)
            freeze = freeze_request(project=project, policy=policy, created_by=request.user,
                                    name=request.POST.get("name", ""))
        except PolicyError as exc:
            messages.error(request, "Not frozen: " + "; ".join(f"{k}: {v}" for k, v in exc.errors.items()))
        except ValueError as exc:
            messages.error(request, f"Not frozen: {exc}. Shares are written name=0.3, comma-separated.")
        else:
            # A large project takes a while: a worker freezes it while this page shows progress.
            return redirect(reverse("set-freezing", args=[slug, freeze.pk]))
    return render(request, "frontend/sets.html", {
        "project": project, "sets": preference_sets_of(project=project), "defaults": CurationPolicy(),
        "aggregations": AGGREGATIONS, "bias_drops": BIAS_DROPS, "judge_labels": JUDGE_LABELS,
        "standings": StandingState.choices, "tags": TAGS,
    })


DIFF_ON_PAGE = 100_000


@login_required
def set_page(request: HttpRequest, slug: str, version: int) -> HttpResponse:
    project = project_for(request, slug, can_export)
    preference_set = preference_set_get(project=project, version=version)
    if preference_set is None:
        raise Http404("No such version.")
    previous = preference_set_get(project=project, version=version - 1) if version > 1 else None
    # The diff reads both sets whole: shown here for sets of ordinary size, by API link beyond.
    small = previous is not None and max(previous.counts.get("pairs", 0), preference_set.counts.get("pairs", 0)) <= DIFF_ON_PAGE
    diff = preference_set_diff(older=previous, newer=preference_set) if small else None
    downloads = [
        {"format": f, "extension": FILE_EXTENSIONS.get(f, "jsonl"), "read_with": READER_ARGS[f]} for f in SET_FORMATS
    ]
    return render(request, "frontend/set.html", {
        "project": project, "set": preference_set, "previous": previous, "diff": diff, "downloads": downloads,
        "charts": preference_set.coverage,
    })


def _freeze_or_404(project, request_id: int):
    freeze = freeze_request_get(project=project, request_id=request_id)
    if freeze is None:
        raise Http404("No such freeze.")
    return freeze


@login_required
def set_freezing(request: HttpRequest, slug: str, request_id: int) -> HttpResponse:
    """A freeze in progress: the page polls this every second; when the set exists, on to it."""
    project = project_for(request, slug, can_export)
    freeze = _freeze_or_404(project, request_id)
    freeze = freeze_progress(request=freeze)
    done_url = reverse("set", args=[slug, freeze.preference_set.version]) if freeze.preference_set else ""
    if request.htmx:
        if freeze.status == FreezeStatus.SUCCEEDED:
            return HttpResponseClientRedirect(done_url)
        return render(request, "frontend/_freeze_progress.html", {"project": project, "freeze": freeze})
    if freeze.status == FreezeStatus.SUCCEEDED:
        return redirect(done_url)
    return render(request, "frontend/set_freezing.html", {"project": project, "freeze": freeze})


@login_required
@require_POST
def set_freeze_retry(request: HttpRequest, slug: str, request_id: int) -> HttpResponse:
    """Freeze again under a failed freeze's policy and name, and watch the new one."""
    project = project_for(request, slug, can_export)
    freeze = _freeze_or_404(project, request_id)
    try:
        freeze = freeze_retry(request=freeze, user=request.user)
    except JobStateError as exc:
        messages.error(request, str(exc))
    return redirect(reverse("set-freezing", args=[slug, freeze.pk]))
