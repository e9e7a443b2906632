"""Functions that read. Every read an annotator can reach is scoped to what they may see."""
from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from django.http import Http404

from .models import Assignment, ImportJob, Item, Judgment, Membership, Project
from .permissions import can_see_all_judgments, has_role, remember_roles
from .sides import to_shown


def project_get_for_member(*, slug: str, user) -> Project:
    """The project, if the user belongs to it (or is admin). Non-members get 404, not 403, so
    project names do not leak."""
    memberships = list(
        Membership.objects.filter(project__slug=slug, user=user).select_related("project__current_spec")
    )
    if memberships:
        project = memberships[0].project
        # Fill the per-request role cache permissions.roles_of reads: no second query.
        remember_roles(user=user, project=project, roles={m.role for m in memberships})
        return project
    project = Project.objects.select_related("current_spec").filter(slug=slug).first()
    if project is None or not user.is_superuser:
        raise Http404("No such project.")
    return project


def projects_for_user(*, user) -> QuerySet[Project]:
    qs = Project.objects.order_by("name")
    if not user.is_superuser:
        qs = qs.filter(memberships__user=user).distinct()
    return qs


def assignment_payload(*, assignment: Assignment) -> dict:
    """What an annotator's browser receives for an item: the prompt and the two responses by
    screen side. No model names, no other annotators' labels, no canonical a/b."""
    item = assignment.item if Assignment.item.is_cached(assignment) else None
    if item is None or not Item.prompt.is_cached(item):
        item = Item.objects.select_related("prompt", "response_a", "response_b").get(pk=assignment.item_id)
    left, right = (
        (item.response_a, item.response_b) if assignment.shown_left == "a" else (item.response_b, item.response_a)
    )
    return {
        "assignment": assignment.pk,
        "lease_expires_at": assignment.lease_expires_at,
        "prompt": item.prompt.messages,
        "left": {"text": left.text},
        "right": {"text": right.text},
    }


def judgments_visible_to(*, user, project: Project) -> QuerySet[Judgment]:
    """Leads and engineers see every judgment; an annotator sees only their own."""
    qs = Judgment.objects.filter(project=project).select_related("annotator").order_by("id")
    if not can_see_all_judgments(user=user, project=project):
        qs = qs.filter(annotator=user)
    return qs


def judgment_as_shown(judgment: Judgment) -> dict:
    """A judgment in the terms its annotator saw (left/right), for editing their own."""
    return {
        "choice": to_shown(judgment.choice, shown_left=judgment.shown_left),
        "dimensions": {
            k: to_shown(v, shown_left=judgment.shown_left) for k, v in judgment.dimension_choices.items()
        },
    }


def import_job_get(*, job_id: int, user) -> ImportJob:
    job = ImportJob.objects.select_related("project").filter(pk=job_id).first()
    if job is None or not has_role(user=user, project=job.project, roles=["lead", "engineer"]):
        raise Http404("No such import.")
    return job


def project_overview(*, project: Project) -> dict:
    items = Item.objects.filter(project=project).aggregate(
        items=Count("id"),
        complete=Count("id", filter=Q(judgment_count__gte=project.overlap)),
    )
    per_annotator = list(
        Judgment.objects.filter(project=project)
        .values("annotator__username")
        .annotate(judgments=Count("id"))
        .order_by("-judgments", "annotator__username")
    )
    choices = dict(
        Judgment.objects.filter(project=project).values_list("choice").annotate(n=Count("id")).order_by()
    )
    return {
        "items": items["items"],
        "complete_items": items["complete"],
        "judgments": sum(choices.values()),
        "choices": choices,
        "per_annotator": per_annotator,
        "imports": list(ImportJob.objects.filter(project=project).order_by("-created_at")[:10]),
    }


def assignment_for_annotator(*, assignment_id: int, annotator) -> Assignment:
    """An annotator's own assignment; anyone else's is 404."""
    assignment = Assignment.objects.filter(pk=assignment_id, annotator=annotator).first()
    if assignment is None:
        raise Http404("No such assignment.")
    return assignment


def judgment_for_annotator(*, judgment_id: int, annotator) -> Judgment:
    """An annotator's own judgment; anyone else's (even a lead's view of it) is 404 for editing."""
    judgment = Judgment.objects.filter(pk=judgment_id, annotator=annotator).first()
    if judgment is None:
        raise Http404("No such judgment.")
    return judgment
