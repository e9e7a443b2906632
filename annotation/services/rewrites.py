"""Expert rewrites of bad cases: submit, review (approve or send back), revise.

Only an approved rewrite counts: approval stores it as a response and creates the pair
(rewrite > original) with strong strength, tagged `rewrite`.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..errors import Conflict, ValidationFailed
from ..importing import MAX_TEXT
from ..untrusted import text_problem
from ..models import (
    DerivedPair, ItemKind, PairTag, Project, Response, Rewrite, RewriteStatus, Role, Strength,
)
from ..permissions import has_role, work_allowed_check
from .judgments import rationale_errors, written_text_errors
from .work import assignment_claim, assignment_finish, slot_check

MAX_COMMENT_CHARS = 5_000


@dataclass
class RewriteInput:
    text: str
    flaws: list[str] = field(default_factory=list)
    rationale: str = ""
    from_scratch: bool = False
    time_spent_ms: int = 0


def rewrite_validate(*, project: Project, original: str, data: RewriteInput) -> dict[str, str]:
    errors = written_text_errors(
        data.text, source=original, missing="Write the better answer.",
        too_long=f"Keep the answer under {MAX_TEXT} characters.",
        same="The rewrite is identical to the bad response: change what was wrong.")
    allowed = project.rewrite_flaw_keys
    unknown = [f for f in data.flaws if f not in allowed]
    if unknown:
        errors["flaws"] = f"Unknown flaw(s): {', '.join(unknown)}."
    elif not data.flaws:
        errors["flaws"] = "Name at least one thing that was wrong."
    errors.update(rationale_errors(project=project, rationale=data.rationale, time_spent_ms=data.time_spent_ms,
                                   explaining="the rewrite"))
    return errors


def _cleaned(project: Project, data: RewriteInput) -> dict:
    order = project.rewrite_flaw_keys
    return {
        "text": data.text.strip(),
        "flaws": sorted(set(data.flaws), key=order.index),
        "rationale": data.rationale.strip(),
        "from_scratch": bool(data.from_scratch),
    }


def rewrite_submit(
    *, assignment_id: int, author, data: RewriteInput, client_token: uuid.UUID, now: datetime | None = None
) -> tuple[Rewrite, bool]:
    """The expert's rewrite of the bad case on their assignment. Returns (rewrite, created)."""
    now = now or timezone.now()
    with transaction.atomic():
        claim = assignment_claim(
            assignment_id=assignment_id, annotator=author, kind=ItemKind.REWRITE,
            replay=lambda: Rewrite.objects.filter(author=author, client_token=client_token).first(),
        )
        if claim.replay is not None:
            return claim.replay, False
        assignment = claim.assignment
        project = assignment.project
        original = Response.objects.get(pk=assignment.item.response_a_id).text
        errors = rewrite_validate(project=project, original=original, data=data)
        if errors:
            raise ValidationFailed("Please fix the highlighted fields.", field_errors=errors)
        slot_check(claim)
        try:
            rewrite = Rewrite.objects.create(
                project=project, item_id=assignment.item_id, assignment=assignment, author=author,
                **_cleaned(project, data), time_spent_ms=data.time_spent_ms,
                spec_version=project.current_spec, client_token=client_token,
            )
        except IntegrityError:
            raise Conflict("This submit token was already used for another item.") from None
        assignment_finish(claim=claim, now=now)
        return rewrite, True


def can_review_rewrite(*, user, rewrite: Rewrite) -> bool:
    """A lead, or a second expert: another annotator holding the skill of the task's domain."""
    project = rewrite.project
    if user.pk == rewrite.author_id:  # nobody reviews their own work, leads included
        return False
    if has_role(user=user, project=project, roles=[Role.LEAD]):
        return True
    if not has_role(user=user, project=project, roles=[Role.ANNOTATOR]):
        return False
    domain = rewrite.item.prompt.domain.strip().lower()
    return bool(domain) and user.skills.filter(project=project, skill=domain).exists()


def _locked(rewrite_id: int) -> Rewrite:
    return (
        Rewrite.objects.select_for_update(of=("self",))
        .select_related("project", "item__prompt", "item__response_a")
        .get(pk=rewrite_id)
    )


@transaction.atomic
def rewrite_approve(*, rewrite_id: int, reviewer, comment: str = "", now: datetime | None = None) -> Rewrite:
    """Approve a rewrite: it becomes a response and the pair (rewrite > original) is created."""
    rewrite = _locked(rewrite_id)
    if not can_review_rewrite(user=reviewer, rewrite=rewrite):
        raise Conflict("Only a lead or a second expert with this domain's skill reviews this rewrite.")
    if rewrite.status == RewriteStatus.APPROVED:
        return rewrite
    if rewrite.status != RewriteStatus.SUBMITTED:
        raise Conflict("This rewrite was sent back; it can be approved once its author revises it.")
    _comment_check(comment)
    original = rewrite.item.response_a
    response = Response.objects.create(
        prompt_id=original.prompt_id, text=rewrite.text, model_name="expert-rewrite",
        metadata={"rewrite_id": rewrite.pk, "rewrites_response": original.pk},
    )
    rewrite.status = RewriteStatus.APPROVED
    rewrite.review_comment = comment.strip()[:MAX_COMMENT_CHARS]
    rewrite.reviewed_by = reviewer
    rewrite.reviewed_at = now or timezone.now()
    rewrite.response = response
    rewrite.save(update_fields=["status", "review_comment", "reviewed_by", "reviewed_at", "response", "updated_at"])
    DerivedPair.objects.create(
        project=rewrite.project, prompt_id=original.prompt_id, chosen=response, rejected=original,
        strength=Strength.STRONG, tag=PairTag.REWRITE, author_id=rewrite.author_id, rewrite=rewrite,
    )
    return rewrite


def _comment_check(comment: str) -> None:
    problem = text_problem(comment)
    if problem:
        raise ValidationFailed(f"The comment {problem}.", field_errors={"comment": f"The comment {problem}: remove it."})


@transaction.atomic
def rewrite_return(*, rewrite_id: int, reviewer, comment: str, now: datetime | None = None) -> Rewrite:
    """Send a rewrite back to its author with a comment saying what to change."""
    rewrite = _locked(rewrite_id)
    if not can_review_rewrite(user=reviewer, rewrite=rewrite):
        raise Conflict("Only a lead or a second expert with this domain's skill reviews this rewrite.")
    comment = comment.strip()
    if not comment:
        raise ValidationFailed("Say what to change.", field_errors={"comment": "Say what to change."})
    _comment_check(comment)
    if rewrite.status != RewriteStatus.SUBMITTED:
        raise Conflict(f"This rewrite is {rewrite.get_status_display().lower()}; only one waiting for review can be sent back.")
    rewrite.status = RewriteStatus.RETURNED
    rewrite.review_comment = comment[:MAX_COMMENT_CHARS]
    rewrite.reviewed_by = reviewer
    rewrite.reviewed_at = now or timezone.now()
    rewrite.save(update_fields=["status", "review_comment", "reviewed_by", "reviewed_at", "updated_at"])
    return rewrite


@transaction.atomic
def rewrite_revise(*, rewrite_id: int, author, data: RewriteInput) -> Rewrite:
    """The author answers a send-back: the earlier revision and its review go to the history."""
    rewrite = _locked(rewrite_id)
    if rewrite.author_id != author.pk:
        raise Conflict("Only its author revises a rewrite.")
    work_allowed_check(user=author, project=rewrite.project)
    if rewrite.status != RewriteStatus.RETURNED:
        raise Conflict("Only a rewrite that was sent back can be revised.")
    errors = rewrite_validate(project=rewrite.project, original=rewrite.item.response_a.text, data=data)
    if errors:
        raise ValidationFailed("Please fix the highlighted fields.", field_errors=errors)
    rewrite.history = [
        *rewrite.history,
        {
            "revision": rewrite.revision, "text": rewrite.text, "flaws": rewrite.flaws,
            "rationale": rewrite.rationale, "review_comment": rewrite.review_comment,
            "reviewed_by": rewrite.reviewed_by_id,
            "reviewed_at": rewrite.reviewed_at.isoformat() if rewrite.reviewed_at else None,
        },
    ]
    for name, value in _cleaned(rewrite.project, data).items():
        setattr(rewrite, name, value)
    rewrite.time_spent_ms += max(0, data.time_spent_ms)
    rewrite.revision += 1
    rewrite.status = RewriteStatus.SUBMITTED
    rewrite.review_comment = ""
    rewrite.reviewed_by = None
    rewrite.reviewed_at = None
    rewrite.spec_version = rewrite.project.current_spec
    rewrite.save()
    return rewrite
