"""API token lifecycle: create (shown once), rotate (new secret, the old one stops working), revoke."""
from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.http import Http404
from django.utils import timezone

from ..errors import Conflict, NotAllowed, ValidationFailed
from ..models import ApiToken, Membership, Role, token_secret_new

# Leads and engineers (in any project) script the API; annotators label in the browser.
TOKEN_ROLES = (Role.LEAD, Role.ENGINEER)
MAX_ACTIVE_TOKENS = 50


def can_hold_tokens(*, user) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return Membership.objects.filter(user=user, role__in=TOKEN_ROLES).exists()


def tokens_of(*, user):
    return ApiToken.objects.filter(user=user)


def token_of(*, user, token_id: int) -> ApiToken:
    """One of the user's own tokens; anyone else's, or none, is a 404 (the same answer for both)."""
    token = tokens_of(user=user).filter(pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    return token


def token_issue(*, user, name: str = "", expires_at: datetime | None = None, scope: str = "",
                project=None) -> tuple[ApiToken, str]:
    """A new token for `user`, with no role check (management commands, the demo, tests).
    Returns the row and the secret, which is stored nowhere. A `scope` limits it to that scope's
    endpoint for `project` (annotation/security.py: TokenScope)."""
    secret = token_secret_new()
    token = ApiToken(user=user, name=name[:100], expires_at=expires_at, scope=scope, project=project)
    token.set_secret(secret)
    token.save()
    return token, secret


def token_create(*, user, name: str = "", expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """What a person asks for on the tokens page or POST /api/tokens/."""
    if not can_hold_tokens(user=user):
        raise NotAllowed("Only leads and engineers may create API tokens.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed("The expiry must be in the future.", field_errors={"expires_at": "Must be in the future."})
    if tokens_of(user=user).usable().count() >= MAX_ACTIVE_TOKENS:
        raise Conflict(f"You already hold {MAX_ACTIVE_TOKENS} active tokens: revoke one first.")
    return token_issue(user=user, name=name, expires_at=expires_at)


@transaction.atomic
def token_rotate(*, token: ApiToken) -> str:
    """A new secret for the same token (name, expiry); the old secret stops working at once."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        raise Conflict("A revoked token cannot be rotated.")
    if token.is_expired:
        raise Conflict("An expired token cannot be rotated: create a new one.")
    secret = token_secret_new()
    token.set_secret(secret)
    token.rotated_at = timezone.now()
    token.save(update_fields=["prefix", "digest", "rotated_at"])
    return secret


def token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def feedback_token_create(*, project, lead, name: str = "", expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """A token the product's backend uses to post production feedback to this project, and nothing
    else: it cannot read, label, export or reach another project. Leads only."""
    if not Membership.objects.filter(project=project, user=lead, role=Role.LEAD).exists() and not lead.is_superuser:
        raise NotAllowed("Only the project's leads issue production-feedback tokens.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed("The expiry must be in the future.", field_errors={"expires_at": "Must be in the future."})
    return token_issue(user=lead, name=name or f"{project.slug} production feedback", expires_at=expires_at,
                       scope=FEEDBACK_SCOPE, project=project)


FEEDBACK_SCOPE = "production_feedback"
