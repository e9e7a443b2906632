"""What every page view starts with: the project if the user's role allows the page, and the
time on item the browser reported (never trusted to be a number)."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from annotation import selectors


def project_for(request: HttpRequest, slug: str, check):
    """The project for a member whose role passes `check`; 404 for non-members, 403 otherwise."""
    project = selectors.project_get_for_member(slug=slug, user=request.user)
    if not check(user=request.user, project=project):
        raise PermissionDenied("Your role in this project does not allow this page.")
    return project


def time_spent_ms(raw) -> int:
    try:
        return max(0, int(float(raw or 0)))
    except ValueError:
        return 0
