"""A project's calibration settings."""
from __future__ import annotations

from django.core.exceptions import ValidationError

from annotation.errors import ValidationFailed
from annotation.models import Project

from ..models import CalibrationPolicy

POLICY_FIELDS = (
    "disagreement_threshold",
    "calibration_size",
    "hidden_rate",
    "reask_rate",
    "show_hidden_feedback",
    "window_size",
    "window_min",
    "cusum_p0",
    "cusum_p1",
    "cusum_h",
    "exclude_after_failed_rounds",
)


def policy_get(*, project: Project) -> CalibrationPolicy:
    policy, _ = CalibrationPolicy.objects.get_or_create(project=project)
    return policy


def settings_apply(*, instance, changes: dict, allowed: tuple[str, ...]):
    """Validate and save a project's settings row (calibration or analytics): unknown names and
    bad values come back as field errors, and nothing is saved unless every change is valid."""
    unknown = set(changes) - set(allowed)
    if unknown:
        raise ValidationFailed("Unknown settings.", field_errors={k: "Unknown setting." for k in sorted(unknown)})
    for name, value in changes.items():
        setattr(instance, name, value)
    try:
        instance.full_clean()
    except ValidationError as exc:
        raise ValidationFailed(
            "Please fix the highlighted settings.",
            field_errors={k: " ".join(v) for k, v in exc.message_dict.items()},
        ) from None
    instance.save()
    return instance


def policy_update(*, project: Project, changes: dict) -> CalibrationPolicy:
    return settings_apply(instance=policy_get(project=project), changes=changes, allowed=POLICY_FIELDS)
