"""Django admin: projects, members and specs are editable; judgments are read-only records."""
from django.contrib import admin
from django.utils import timezone

from .models import ApiToken, ImportJob, Item, Judgment, JudgmentRevision, Membership, Project, Prompt, SpecVersion


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "overlap", "min_rationale_chars", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]
    readonly_fields = ["current_spec"]


@admin.register(SpecVersion)
class SpecVersionAdmin(admin.ModelAdmin):
    list_display = ["project", "version", "created_by", "created_at"]
    readonly_fields = ["project", "version", "text", "created_by", "created_at"]


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "domain", "difficulty", "source", "external_id"]
    list_filter = ["project", "domain", "difficulty", "source"]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "status", "target_judgments", "assigned_count", "judgment_count", "priority"]
    list_filter = ["project", "status"]
    readonly_fields = ["assigned_count", "judgment_count"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records kept for audits: they change only through the services (every app's admin uses it)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Judgment)
class JudgmentAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "item", "annotator", "choice", "strength", "shown_left", "revision", "created_at"]
    list_filter = ["project", "choice"]


@admin.register(JudgmentRevision)
class JudgmentRevisionAdmin(ReadOnlyAdmin):
    list_display = ["judgment", "revision", "choice", "replaced_by", "replaced_at"]


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "original_name", "status", "items_created", "error_count", "created_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Read and revoke only: a token is created on the tokens page or by the API, where its
    secret is shown once."""
    list_display = ["prefix", "user", "name", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["user__username", "name", "prefix"]
    readonly_fields = ["user", "prefix", "digest", "created_at", "rotated_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
