"""Who is calling, and how often: API-token authentication for DRF, the login-throttle backend
(django-axes) and the API throttles. Settings name these classes (config/settings/base.py)."""
from __future__ import annotations

import logging
import os
from datetime import timedelta

from axes.backends import AxesStandaloneBackend
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from .models import ApiToken, token_digest
from .rows import columns, from_row

logger = logging.getLogger(__name__)

# last_used_at is written at most this often per token: one UPDATE a minute, not one a request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class ApiTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <secret>` or `Bearer <secret>`: looked up by the secret's SHA-256
    digest; revoked and expired tokens are refused."""
    keyword = "Token"
    keywords = ("token", "bearer")

    # DRF's own authenticate() accepts one keyword; this one takes both, then DRF's checks apply.
    def authenticate(self, request):
        auth = get_authorization_header(request).split()
        if not auth or auth[0].lower() not in {k.encode() for k in self.keywords}:
            return None
        if len(auth) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: give exactly one token.")
        try:
            secret = auth[1].decode("ascii")
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token header: the token holds invalid characters.") from None
        return self.authenticate_credentials(secret)

    def authenticate_credentials(self, key: str):
        if not key or len(key) > 200:
            raise exceptions.AuthenticationFailed("Invalid token.")
        token = _token_with_user(token_digest(key))
        if token is None or token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        now = timezone.now()
        if token.expires_at is not None and token.expires_at <= now:
            raise exceptions.AuthenticationFailed("Token has expired.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword


def _token_with_user(digest: str) -> ApiToken | None:
    """The token with this digest and its user, in one hand-written statement (annotation/rows.py):
    every API request authenticates, and the ORM's select_related lookup cost more CPU than the
    database spent on it. Nothing is cached: a revoked token or a deactivated user is refused on
    the very next request."""
    user_model = get_user_model()
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT {columns(ApiToken, "t")}, {columns(user_model, "u")} FROM "{ApiToken._meta.db_table}" t '
            f'JOIN "{user_model._meta.db_table}" u ON u."id" = t."user_id" WHERE t."digest" = %s',
            [digest],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    token, rest = from_row(ApiToken, row)
    token.user, _ = from_row(user_model, rest)
    return token


class LoginThrottleBackend(AxesStandaloneBackend):
    """django-axes' backend, except that an authenticate() without a request (the test client's
    login(), a shell) is not refused: there is no client address to throttle, so it is left to the
    next backend."""

    def authenticate(self, request=None, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class _FailOpen:
    """DRF throttles count in the shared cache; when the cache cannot be reached (Redis restarting)
    a request is let through rather than answered 500: throttling is a guard, not a dependency."""

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception:  # noqa: BLE001 (any cache failure)
            logger.warning("throttle cache unavailable; request let through", exc_info=True)
            return True


class AnonThrottle(_FailOpen, AnonRateThrottle):
    pass


class UserThrottle(_FailOpen, UserRateThrottle):
    pass


class FeedbackThrottle(_FailOpen, SimpleRateThrottle):
    """The production-feedback intake, per token: the product's backend may retry in a loop, and
    every accepted request is a row. Rate: PRODUCTION_FEEDBACK_RATE (default 600/min)."""

    scope = "production_feedback"
    THROTTLE_RATES = {"production_feedback": os.environ.get("PRODUCTION_FEEDBACK_RATE", "600/min")}

    def get_cache_key(self, request, view):
        token = request.auth
        # The id and the secret's public prefix: an id alone can repeat (a database restored or rebuilt).
        ident = f"token-{token.pk}-{token.prefix}" if isinstance(token, ApiToken) else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class TokenScope(BasePermission):
    """A scoped API token (ApiToken.scope) reaches only the views that name its scope in
    `token_scope`; everywhere else it is refused, whatever its user could do. A full token and a
    session are unaffected. The view itself checks the token's project."""

    message = "This token is limited to its scope (production feedback intake) and cannot call this endpoint."

    def has_permission(self, request, view):
        token = request.auth
        scope = token.scope if isinstance(token, ApiToken) else ""
        return not scope or getattr(view, "token_scope", None) == scope
