"""While the database cannot be reached (restarting, failing over, out of connections, locked) a
request answers 503 with Retry-After, pages and API alike, never a 500: the client retries, and
nothing it was told was saved is lost (a write either committed before its answer, or the answer
is a 503 and the client sends it again; submits are idempotent by client_token).

The app recovers by itself, with no restart: CONN_HEALTH_CHECKS drops a dead persistent connection
at the start of the next request, and a connection that raised is closed at the end of its request,
so the next one connects afresh.
"""
from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

log = logging.getLogger(__name__)

MESSAGE = "The database is unavailable for a moment. Nothing was lost; try again shortly."


def database_unavailable(exc: BaseException | None) -> bool:
    """OperationalError or InterfaceError, raised as is or as the cause of what was raised."""
    for _ in range(5):
        if exc is None:
            return False
        if isinstance(exc, (OperationalError, InterfaceError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def unavailable_response(request: HttpRequest) -> HttpResponse:
    retry_after = str(getattr(settings, "DB_UNAVAILABLE_RETRY_AFTER_SECONDS", 5))
    if request.path.startswith("/api/") or "json" in request.headers.get("Accept", ""):
        response = JsonResponse({"detail": MESSAGE, "retryable": True}, status=503)
    else:
        # No template: rendering the site's layout would ask the database for the user again.
        response = HttpResponse(
            f"<!doctype html><title>Back in a moment</title><h1>Back in a moment</h1><p>{MESSAGE}</p>",
            status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = retry_after
    return response


class DatabaseUnavailableMiddleware:
    """Maps a database that cannot be reached, in any view (htmx pages and DRF alike: DRF re-raises
    what its exception handler does not handle), to a 503 with Retry-After."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if database_unavailable(exception):
            log.warning("database unavailable during %s %s: %s", request.method, request.path, exception)
            return unavailable_response(request)
        return None


def server_error(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """handler500: the same 503 for a database error raised outside a view (in a middleware, such
    as the session being saved); any other error is the ordinary 500 page."""
    if database_unavailable(sys.exc_info()[1]):
        return unavailable_response(request)
    return defaults.server_error(request, *args, **kwargs)
