"""Projects, their versioned behaviour spec, and memberships."""
from __future__ import annotations

from django.db import transaction
from django.db.models import Max

from ..errors import ValidationFailed
from ..models import AnnotatorSkill, DailyGoal, Membership, Project, Role, SpecVersion
from ..rubrics import parse_rubrics


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
    """Publish a new spec version; judgments made from now on record it. Its rubrics
    (annotation.rubrics) must parse: a malformed one is refused with its line."""
    rubrics = parse_rubrics(text)
    if rubrics.errors:
        raise ValidationFailed("The spec's rubrics need fixing: " + " ".join(
            f"Line {line}: {message}" for line, message in rubrics.errors[:10]),
            field_errors={"text": "; ".join(f"line {line}: {message}" for line, message in rubrics.errors[:10])})
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


# What the Settings page may change after creation, with the range each accepts. The overlap and
# the dimensions are fixed once judgments exist (a changed k or a new dimension would make the
# existing judgments incomparable); they are shown there read-only.
SETTING_RANGES = {
    "min_rationale_chars": (0, 5000),
    "lease_seconds": (60, 7 * 24 * 3600),
    "edit_window_hours": (0, 24 * 90),
    "daily_goal": (0, 100_000),
}


def _whole_number(raw, low: int, high: int) -> tuple[int | None, str]:
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        return None, "Enter a whole number."
    if not low <= value <= high:
        return None, f"Enter a number from {low} to {high}."
    return value, ""


@transaction.atomic
def project_settings_update(*, project: Project, data: dict) -> Project:
    """Change the project's name, description and the settings in SETTING_RANGES; every field is
    checked before anything is saved (all or nothing, each error on its field)."""
    errors: dict[str, str] = {}
    values: dict = {}
    name = str(data.get("name", project.name)).strip()
    if not name:
        errors["name"] = "A project needs a name."
    elif len(name) > Project._meta.get_field("name").max_length:
        errors["name"] = "At most 200 characters."
    values["name"] = name
    values["description"] = str(data.get("description", project.description))
    for field, (low, high) in SETTING_RANGES.items():
        value, problem = _whole_number(data.get(field, getattr(project, field)), low, high)
        if problem:
            errors[field] = problem
        values[field] = value
    if errors:
        raise ValidationFailed("Please fix the highlighted fields.", field_errors=errors)
    Project.objects.filter(pk=project.pk).update(**values)
    for field, value in values.items():
        setattr(project, field, value)
    return project


def daily_goal_set(*, project: Project, user, target, set_by) -> int:
    """An annotator's own tasks-per-day goal (they set it, or a lead does); 0 removes the goal."""
    value, problem = _whole_number(target, *SETTING_RANGES["daily_goal"])
    if problem:
        raise ValidationFailed(problem, field_errors={"target": problem})
    DailyGoal.objects.update_or_create(project=project, user=user, defaults={"target": value, "set_by": set_by})
    return value
