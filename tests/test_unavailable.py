"""A database that cannot be reached answers 503 with Retry-After, pages and API alike, not 500
(annotation/unavailable.py). tests/faults/test_postgres_restart.py restarts a real PostgreSQL under
real clients; these pin the mapping itself."""
from __future__ import annotations

import json

from django.db import InterfaceError, IntegrityError, OperationalError
from django.test import RequestFactory

from annotation.unavailable import DatabaseUnavailableMiddleware, database_unavailable, server_error


def test_connection_errors_and_what_they_caused_count_as_unavailable():
    assert database_unavailable(OperationalError("terminating connection due to administrator command"))
    assert database_unavailable(InterfaceError("connection already closed"))
    try:
        try:
            raise OperationalError("database is locked")
        except OperationalError as exc:
            raise RuntimeError("while importing") from exc
    except RuntimeError as exc:
        assert database_unavailable(exc)
    assert not database_unavailable(IntegrityError("duplicate key"))
    assert not database_unavailable(ValueError("bad input"))


def test_the_api_and_pages_answer_503_with_retry_after(settings):
    settings.DB_UNAVAILABLE_RETRY_AFTER_SECONDS = 7
    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    down = OperationalError("connection refused")
    api = middleware.process_exception(RequestFactory().get("/api/projects/"), down)
    assert (api.status_code, api["Retry-After"]) == (503, "7")
    assert json.loads(api.content)["retryable"] is True
    page = middleware.process_exception(RequestFactory().get("/p/demo/lead/"), down)
    assert (page.status_code, page["Retry-After"], page["Content-Type"]) == (503, "7", "text/html; charset=utf-8")
    assert middleware.process_exception(RequestFactory().get("/p/demo/lead/"), ValueError("bug")) is None


def test_the_500_handler_answers_503_for_a_database_error_met_outside_a_view(settings):
    request = RequestFactory().get("/p/demo/lead/")
    try:
        raise InterfaceError("connection already closed")
    except InterfaceError:
        assert server_error(request).status_code == 503
    try:
        raise ValueError("a bug")
    except ValueError:
        assert server_error(request).status_code == 500
