"""Projects, their versioned behaviour spec, and memberships."""
from __future__ import annotations

from django.db import transaction
from django.db.models import Max

from ..errors import ValidationFailed
from ..models import AnnotatorSkill, Membership, Project, Role, SpecVersion


@transaction.atomic
def project_create(
    *,
    slug: str,
    name: str,
    spec_text: str = "",
    dimensions: list[dict] | None = None,
    overlap: int = 3,
    min_rationale_chars: int = 20,
    lease_seconds: int = 1800,
    created_by=None,
) -> Project:
    project = Project(
        slug=slug,
        name=name,
        overlap=overlap,
        min_rationale_chars=min_rationale_chars,
        lease_seconds=lease_seconds,
    )
    if dimensions is not None:
        project.dimensions = dimensions
    project.full_clean()
    project.save()
    spec_publish(project=project, text=spec_text or f"# {name}\n\nNo behaviour spec written yet.", created_by=created_by)
    return project


@transaction.atomic
def spec_publish(*, project: Project, text: str, created_by=None) -> SpecVersion:
    """Publish a new spec version; judgments made from now on record it."""
    project = Project.objects.select_for_update().get(pk=project.pk)
    latest = project.spec_versions.aggregate(v=Max("version"))["v"] or 0
    spec = SpecVersion(project=project, version=latest + 1, text=text, created_by=created_by)
    spec.full_clean()
    spec.save()
    Project.objects.filter(pk=project.pk).update(current_spec=spec)
    project.current_spec = spec
    return spec


def membership_add(*, project: Project, user, role: str) -> Membership:
    membership, _ = Membership.objects.get_or_create(project=project, user=user, role=role)
    return membership


@transaction.atomic
def skills_set(*, project: Project, user, skills: list[str]) -> list[str]:
    """Replace an annotator's domain skills in the project (routing reads them on every lease)."""
    if not Membership.objects.filter(project=project, user=user, role=Role.ANNOTATOR).exists():
        raise ValidationFailed(
            "Skills are for annotators of this project.", field_errors={"user": "Not an annotator here."}
        )
    wanted = sorted({s.strip().lower() for s in skills if s.strip()})
    AnnotatorSkill.objects.filter(project=project, user=user).exclude(skill__in=wanted).delete()
    have = set(AnnotatorSkill.objects.filter(project=project, user=user).values_list("skill", flat=True))
    AnnotatorSkill.objects.bulk_create(
        [AnnotatorSkill(project=project, user=user, skill=s) for s in wanted if s not in have]
    )
    return wanted
