"""What more than one area of pages uses. Area modules import this module and never each other.

`project_for` and `time_spent_ms` live in frontend.access (imported from there elsewhere too);
they are re-exported here so that every page module takes its shared helpers from one place."""
from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from ..access import posted_id, project_for, time_spent_ms

__all__ = ["lead_redirect", "posted_id", "project_for", "time_spent_ms"]


def lead_redirect(slug: str, name: str = "calibration") -> HttpResponse:
    return redirect(reverse(name, args=[slug]))
