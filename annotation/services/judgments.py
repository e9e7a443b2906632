"""Submitting and editing judgments.

A submit carries a client token generated when the form was rendered: a retried submit (double
click, flaky network, a client that timed out) returns the first judgment instead of creating a
second one.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..errors import Conflict, NotAllowed, ValidationFailed
from ..importing import MAX_TEXT
from ..models import Choice, ItemKind, Judgment, JudgmentRevision, Project, Strength
from ..permissions import work_allowed_check
from ..sides import SHOWN_CHOICES, to_canonical
from ..untrusted import MAX_TIME_SPENT_MS, text_problem, visible_length
from .badcases import bad_cases_from_judgment
from .work import assignment_claim, assignment_finish, slot_check

MAX_RATIONALE_CHARS = 20_000


@dataclass
class JudgmentInput:
    """What the annotator submitted, in the terms they saw (left/right)."""

    choice: str
    strength: str = ""
    dimensions: dict[str, str] = field(default_factory=dict)
    rationale: str = ""
    time_spent_ms: int = 0


def choice_errors(*, project: Project, choice: str, strength: str, dimensions, choices: tuple[str, ...],
                  better: tuple[str, str], choice_message: str) -> dict[str, str]:
    """The one check of a pairwise answer, for an annotator's judgment (in left/right terms) and an
    expert's anchor answer (in a/b terms) alike: a known choice; a strength exactly when one side is
    `better`; per-dimension choices only for the project's dimensions."""
    errors: dict[str, str] = {}
    if choice not in choices:
        errors["choice"] = choice_message
    if choice in better:
        if strength not in Strength.values:
            errors["strength"] = "Say how much better: slight, clear or strong."
    elif strength:
        errors["strength"] = "Strength applies only when one response is better."
    if not isinstance(dimensions, dict):
        errors["dimensions"] = "Dimensions must map a dimension key to a choice."
        return errors
    allowed = set(project.dimension_keys)
    for key, value in dimensions.items():
        if key not in allowed:
            errors[f"dimensions.{key}"] = f"Unknown dimension '{key}'."
        elif value not in choices:
            errors[f"dimensions.{key}"] = choice_message
    return errors


def judgment_validate(*, project: Project, data: JudgmentInput) -> dict[str, str]:
    """Field -> message for everything wrong with a submit; empty when it is acceptable."""
    errors = choice_errors(project=project, choice=data.choice, strength=data.strength, dimensions=data.dimensions,
                           choices=SHOWN_CHOICES, better=("left", "right"), choice_message="Choose A, B, tie or both bad.")
    errors.update(rationale_errors(project=project, rationale=data.rationale, time_spent_ms=data.time_spent_ms,
                                   explaining="your choice"))
    return errors


def written_text_errors(text: str, *, source: str, missing: str, too_long: str, same: str) -> dict[str, str]:
    """The check of a text an annotator writes against a `source` response (a rewrite of a bad
    answer, a flawed variant of a good one): storable, not empty, within MAX_TEXT, not the source."""
    problem = text_problem(text)
    stripped = text.strip()
    if problem:
        return {"text": f"The text {problem}: remove it."}
    if not stripped:
        return {"text": missing}
    if len(stripped) > MAX_TEXT:
        return {"text": too_long}
    if stripped == source.strip():
        return {"text": same}
    return {}


def rationale_errors(*, project: Project, rationale: str, time_spent_ms: int, explaining: str) -> dict[str, str]:
    """The checks every kind of submit shares (judgment, ranking, rewrite, negative, calibration
    answer; page and API alike): a storable rationale of the project's minimum length counted in
    visible characters (zero-width and bidi characters do not make a reason), not absurdly long,
    and a time spent from 0 to MAX_TIME_SPENT_MS (what the integer column and the API accept)."""
    errors: dict[str, str] = {}
    problem = text_problem(rationale)
    visible = visible_length(rationale)
    if problem:
        errors["rationale"] = f"The rationale {problem}: remove it."
    elif visible < project.min_rationale_chars:
        errors["rationale"] = (
            f"Write at least {project.min_rationale_chars} characters explaining {explaining} "
            f"({visible} so far)."
        )
    elif len(rationale.strip()) > MAX_RATIONALE_CHARS:
        errors["rationale"] = f"Keep the rationale under {MAX_RATIONALE_CHARS} characters."
    if isinstance(time_spent_ms, bool) or not isinstance(time_spent_ms, int) or not 0 <= time_spent_ms <= MAX_TIME_SPENT_MS:
        errors["time_spent_ms"] = f"Time spent must be a whole number of milliseconds from 0 to {MAX_TIME_SPENT_MS}."
    return errors


def canonical_fields(data: JudgmentInput, *, shown_left: str) -> dict:
    """The stored form of what the annotator chose: a/b instead of left/right."""
    return {
        "choice": to_canonical(data.choice, shown_left=shown_left),
        "strength": data.strength if data.choice in ("left", "right") else "",
        "dimension_choices": {
            key: to_canonical(value, shown_left=shown_left) for key, value in sorted(data.dimensions.items())
        },
        "rationale": data.rationale.strip(),
    }


def judgment_submit(**kwargs) -> tuple[Judgment, bool]:
    """Record the annotator's judgment on their assignment (by id, or by its handle), in its own
    transaction. Returns (judgment, created). Keyword arguments as judgment_record."""
    with transaction.atomic():
        return judgment_record(**kwargs)


def judgment_record(
    *,
    assignment_id: int | None = None,
    handle: str | None = None,
    annotator,
    data: JudgmentInput,
    client_token: uuid.UUID,
    now: datetime | None = None,
) -> tuple[Judgment, bool]:
    """judgment_submit's work, for a caller that already holds the transaction (queue_submit: no
    savepoint of its own, two statements fewer per submit)."""
    now = now or timezone.now()
    claim = assignment_claim(
        assignment_id=assignment_id,
        handle=handle,
        annotator=annotator,
        kind=ItemKind.COMPARISON,
        replay=lambda: Judgment.objects.filter(annotator=annotator, client_token=client_token).first(),
    )
    if claim.replay is not None:
        return claim.replay, False
    assignment = claim.assignment
    project = assignment.project
    errors = judgment_validate(project=project, data=data)
    if errors:
        raise ValidationFailed("Please fix the highlighted fields.", field_errors=errors)

    judgment = Judgment(
        assignment=assignment,
        project=project,
        item_id=assignment.item_id,
        annotator=annotator,
        **canonical_fields(data, shown_left=assignment.shown_left),
        time_spent_ms=data.time_spent_ms,
        shown_left=assignment.shown_left,
        spec_version=project.current_spec,
        client_token=client_token,
        # A swapped re-ask's answer points at the earlier judgment it repeats (read by the claim).
        reask_of_id=assignment.item.reask_of_id,
        by_judge=claim.by_judge,  # an AI judge's account (read by the claim)
    )
    try:
        judgment.save()  # no savepoint: on a clash the whole submit rolls back anyway
    except IntegrityError:
        raise Conflict("This submit token was already used for another item.") from None
    # Not from hidden anchors: a rewrite task quoting an anchor would tell it apart. Not from an AI
    # judge either: the rewrite task would show people another rater's label (and a judge answering
    # "both bad" wholesale would flood their queue).
    if judgment.choice == Choice.BOTH_BAD and assignment.item.in_live_queue and not claim.by_judge:
        bad_cases_from_judgment(judgment=judgment, item=assignment.item)
    # Last: from here to the commit the item's row is locked, and every other submit on the item
    # waits for it (the bad-case intake above used to run inside that window). Every submit locks
    # the responses (bad cases) before the item, a lapsed lease's slot check included: two orders
    # would deadlock two both-bad submits on one item.
    slot_check(claim)
    assignment_finish(claim=claim, now=now)
    return judgment, True


def editable_until(*, submitted_at: datetime, project: Project) -> datetime | None:
    """Until when a judgment submitted at `submitted_at` may be edited (None: the project allows
    no edits). Counted from the first submit: editing does not extend the window."""
    if not project.edit_window_hours:
        return None
    return submitted_at + timedelta(hours=project.edit_window_hours)


def edit_window_check(*, judgment, project: Project, now: datetime | None = None) -> None:
    until = editable_until(submitted_at=judgment.created_at, project=project)
    if until is None:
        raise NotAllowed("This project does not allow editing a judgment once it is submitted.")
    if (now or timezone.now()) > until:
        raise NotAllowed(
            f"The edit window ({project.edit_window_hours} h after submitting) has closed for this judgment."
        )


@transaction.atomic
def judgment_edit(*, judgment_id: int, editor, data: JudgmentInput) -> Judgment:
    """An annotator revises their own judgment; the previous state is kept as a revision."""
    judgment = (
        Judgment.objects.select_for_update(of=("self",))
        .select_related("project", "project__current_spec")
        .get(pk=judgment_id, annotator=editor)
    )
    work_allowed_check(user=editor, project=judgment.project)
    edit_window_check(judgment=judgment, project=judgment.project)
    errors = judgment_validate(project=judgment.project, data=data)
    if errors:
        raise ValidationFailed("Please fix the highlighted fields.", field_errors=errors)
    was_both_bad = judgment.choice == Choice.BOTH_BAD
    JudgmentRevision.objects.create(
        judgment=judgment,
        revision=judgment.revision,
        choice=judgment.choice,
        strength=judgment.strength,
        dimension_choices=judgment.dimension_choices,
        rationale=judgment.rationale,
        spec_version=judgment.spec_version,
        recorded_at=judgment.updated_at,
        replaced_by=editor,
    )
    for name, value in canonical_fields(data, shown_left=judgment.shown_left).items():
        setattr(judgment, name, value)
    judgment.spec_version = judgment.project.current_spec
    judgment.revision += 1
    judgment.save()
    # Reported once, when the judgment becomes both-bad (not again on every later edit).
    if judgment.choice == Choice.BOTH_BAD and not was_both_bad and judgment.item.in_live_queue:
        bad_cases_from_judgment(judgment=judgment, item=judgment.item)
    return judgment
