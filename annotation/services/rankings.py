"""Ranking judgments: an annotator orders a ranking item's 3-8 responses, ties allowed.

The order arrives in the letters the annotator saw (A = top as shown, see annotation/ranking.py);
the assignment's `shown_order` maps them to response ids, so the stored ranking is canonical and
the randomised presentation stays on record."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..errors import Conflict, ValidationFailed
from ..models import ItemKind, Project, RankingJudgment
from ..ranking import RankingError, parse_order
from .judgments import rationale_errors
from .work import assignment_claim, assignment_finish, slot_check


@dataclass
class RankingInput:
    order: str  # e.g. "C>A=D>B", best first
    rationale: str = ""
    time_spent_ms: int = 0


def ranking_validate(*, project: Project, n: int, data: RankingInput) -> tuple[list[list[int]] | None, dict[str, str]]:
    """(tiers of shown positions, field errors)."""
    errors: dict[str, str] = {}
    tiers = None
    try:
        tiers = parse_order(data.order, n=n)
    except RankingError as exc:
        errors["order"] = str(exc)
    errors.update(rationale_errors(project=project, rationale=data.rationale, time_spent_ms=data.time_spent_ms,
                                   explaining="your order"))
    return tiers, errors


def ranking_submit(
    *, assignment_id: int, annotator, data: RankingInput, client_token: uuid.UUID, now: datetime | None = None
) -> tuple[RankingJudgment, bool]:
    now = now or timezone.now()
    with transaction.atomic():
        claim = assignment_claim(
            assignment_id=assignment_id, annotator=annotator, kind=ItemKind.RANKING,
            replay=lambda: RankingJudgment.objects.filter(annotator=annotator, client_token=client_token).first(),
        )
        if claim.replay is not None:
            return claim.replay, False
        assignment = claim.assignment
        shown = list(assignment.shown_order)
        tiers, errors = ranking_validate(project=assignment.project, n=len(shown), data=data)
        if errors:
            raise ValidationFailed("Please fix the highlighted fields.", field_errors=errors)
        slot_check(claim)
        try:
            judgment = RankingJudgment.objects.create(
                assignment=assignment, project=assignment.project, item_id=assignment.item_id,
                annotator=annotator, ranking=[[shown[i] for i in tier] for tier in tiers], shown_order=shown,
                rationale=data.rationale.strip(), time_spent_ms=data.time_spent_ms,
                spec_version=assignment.project.current_spec, client_token=client_token,
            )
        except IntegrityError:
            raise Conflict("This submit token was already used for another item.") from None
        assignment_finish(claim=claim, now=now)
        return judgment, True
