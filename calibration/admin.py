"""Calibration in the admin: read-only records for audits. Anchors, policies and standings change
through the lead's pages and services (which keep revisions and the standing history), not here."""
from __future__ import annotations

from django.contrib import admin

from annotation.admin import ReadOnlyAdmin

from .models import Anchor, AnchorResult, Standing, StandingChange


@admin.register(Anchor)
class AnchorAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "item", "expert_choice", "clear_cut", "in_calibration_set"]
    list_filter = ["clear_cut", "in_calibration_set"]


@admin.register(Standing)
class StandingAdmin(ReadOnlyAdmin):
    list_display = ["project", "annotator", "state", "since"]
    list_filter = ["state"]
    search_fields = ["annotator__username"]


@admin.register(StandingChange)
class StandingChangeAdmin(ReadOnlyAdmin):
    list_display = ["project", "annotator", "from_state", "to_state", "cause", "created_at"]
    list_filter = ["cause", "to_state"]


@admin.register(AnchorResult)
class AnchorResultAdmin(ReadOnlyAdmin):
    list_display = ["project", "anchor", "annotator", "context", "correct", "clear_cut"]
    list_filter = ["context", "correct"]
