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


def policy_update(*, project: Project, changes: dict) -> CalibrationPolicy:
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown settings.", field_errors={k: "Unknown setting." for k in sorted(unknown)})
    policy = policy_get(project=project)
    for name, value in changes.items():
        setattr(policy, name, value)
    try:
        policy.full_clean()
    except ValidationError as exc:
        raise ValidationFailed(
            "Please fix the highlighted settings.",
            field_errors={k: " ".join(v) for k, v in exc.message_dict.items()},
        ) from None
    policy.save()
    return policy
