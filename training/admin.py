"""Runs in the admin: read-only, for audits. Runs start, stop and retry through the pages, the API
and the CLI, which keep their lifecycle (heartbeat, reaper, failure with reason)."""
from __future__ import annotations

from django.contrib import admin

from annotation.admin import ReadOnlyAdmin

from .models import Run, RunAlert


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "kind", "status", "step", "total_steps", "created_at", "finished_at"]
    list_filter = ["kind", "status"]


@admin.register(RunAlert)
class RunAlertAdmin(ReadOnlyAdmin):
    list_display = ["run", "step", "kind", "at"]
    list_filter = ["kind"]
