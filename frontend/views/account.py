"""Account pages: the API tokens page (a lead or engineer creates, rotates and revokes their own tokens; a new
secret is rendered in the answer to the POST that made it, once; it is never stored or redirected."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from annotation.errors import DomainError
from annotation.services.tokens import can_hold_tokens, token_create, token_revoke, token_of, token_rotate, tokens_of

EXPIRY_CHOICES = [("", "Never"), ("7", "In 7 days"), ("30", "In 30 days"), ("90", "In 90 days"), ("365", "In a year")]


def _check(request: HttpRequest) -> None:
    if not can_hold_tokens(user=request.user):
        raise PermissionDenied("Only leads and engineers may hold API tokens.")


def _page(request: HttpRequest, *, status: int = 200, **extra) -> HttpResponse:
    context = {"tokens": tokens_of(user=request.user), "expiry_choices": EXPIRY_CHOICES, **extra}
    response = render(request, "frontend/tokens.html", context, status=status)
    if "new_secret" in extra:
        response["Cache-Control"] = "no-store"
    return response


@login_required
def tokens_page(request: HttpRequest) -> HttpResponse:
    _check(request)
    return _page(request)


@login_required
@require_POST
def token_new(request: HttpRequest) -> HttpResponse:
    _check(request)
    name = request.POST.get("name", "").strip()[:100]
    days = request.POST.get("expires_in_days", "")
    expires_at = None
    if days:
        if days not in {value for value, _ in EXPIRY_CHOICES}:
            return _page(request, status=422, error="Choose an expiry from the list.")
        expires_at = timezone.now() + timedelta(days=int(days))
    try:
        token, secret = token_create(user=request.user, name=name, expires_at=expires_at)
    except DomainError as exc:
        return _page(request, status=exc.status_code, error=exc.message)
    return _page(request, new_secret=secret, new_token=token)


@login_required
@require_POST
def token_rotate_view(request: HttpRequest, token_id: int) -> HttpResponse:
    _check(request)
    token = token_of(user=request.user, token_id=token_id)
    try:
        secret = token_rotate(token=token)
    except DomainError as exc:
        return _page(request, status=exc.status_code, error=exc.message)
    token.refresh_from_db()
    return _page(request, new_secret=secret, new_token=token)


@login_required
@require_POST
def token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    _check(request)
    token_revoke(token=token_of(user=request.user, token_id=token_id))
    return redirect("tokens")


def lockout_response(request, original_response=None, credentials=None):
    """What the login page answers while a username is locked out from an address (django-axes,
    AXES_LOCKOUT_CALLABLE)."""
    cool_off = settings.AXES_COOLOFF_TIME
    minutes = max(1, round(cool_off.total_seconds() / 60)) if cool_off else None
    context = {"failure_limit": settings.AXES_FAILURE_LIMIT, "cooloff_minutes": minutes}
    return render(request, "registration/locked_out.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)
