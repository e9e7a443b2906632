"""Django admin: projects, members and specs are editable; judgments are read-only records."""
from django.contrib import admin

from .models import ImportJob, Item, Judgment, JudgmentRevision, Membership, Project, Prompt, SpecVersion


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
