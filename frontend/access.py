"""What every page view starts with: the project if the user's role allows the page, and the
time on item the browser reported (never trusted to be a number)."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from annotation import selectors
from annotation.errors import ValidationFailed
from annotation.untrusted import time_spent_parse


def project_for(request: HttpRequest, slug: str, check):
    """The project for a member whose role passes `check`; 404 for non-members, 403 otherwise."""
    project = selectors.project_get_for_member(slug=slug, user=request.user)
    if not check(user=request.user, project=project):
        raise PermissionDenied("Your role in this project does not allow this page.")
    return project


def time_spent_ms(raw) -> int:
    """The rule the API applies (annotation.untrusted.time_spent_parse): `inf`, `1e30` or 2**31
    are a field error, as they are a 400 there, instead of a 500 or a DataError."""
    try:
        return time_spent_parse(raw)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field_errors={"time_spent_ms": str(exc)}) from None


def posted_id(raw) -> int | None:
    """A row id from a form field: ASCII digits only (int() takes "²" and " 7 " too), else None."""
    raw = (raw or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None
