"""Frozen preference sets in the admin: readable, never editable or deletable."""
from __future__ import annotations

from django.contrib import admin

from .models import PreferenceSet


@admin.register(PreferenceSet)
class PreferenceSetAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "version", "name", "content_hash", "created_at"]
    readonly_fields = [f.name for f in PreferenceSet._meta.fields]

    def has_add_permission(self, request):  # sets are frozen by the service, with a policy
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
