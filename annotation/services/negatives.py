"""Adversarial negatives: an annotator writes a deliberately flawed variant of a good response
with a declared flaw; it yields the pair (good > negative) tagged `adversarial`."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..errors import Conflict, ValidationFailed
from ..importing import MAX_TEXT
from ..models import AdversarialNegative, DerivedPair, FlawType, ItemKind, PairTag, Project, Response, Strength
from .judgments import rationale_errors, written_text_errors
from .work import assignment_claim, assignment_finish, slot_check


@dataclass
class NegativeInput:
    text: str
    flaw_type: str
    rationale: str = ""
    time_spent_ms: int = 0


def negative_validate(*, project: Project, good: str, data: NegativeInput) -> dict[str, str]:
    errors = written_text_errors(
        data.text, source=good, missing="Write the flawed variant.",
        too_long=f"Keep the variant under {MAX_TEXT} characters.",
        same="The variant is identical to the good response: put the flaw in.")
    if data.flaw_type not in FlawType.values:
        errors["flaw_type"] = "Say which flaw you put in."
    errors.update(rationale_errors(project=project, rationale=data.rationale, time_spent_ms=data.time_spent_ms,
                                   explaining="where the flaw is"))
    return errors


def negative_submit(
    *, assignment_id: int, author, data: NegativeInput, client_token: uuid.UUID, now: datetime | None = None
) -> tuple[AdversarialNegative, bool]:
    """Record the negative and its pair at once (no review: the flaw is declared by design)."""
    now = now or timezone.now()
    with transaction.atomic():
        claim = assignment_claim(
            assignment_id=assignment_id, annotator=author, kind=ItemKind.ADVERSARIAL,
            replay=lambda: AdversarialNegative.objects.filter(author=author, client_token=client_token).first(),
        )
        if claim.replay is not None:
            return claim.replay, False
        assignment = claim.assignment
        project = assignment.project
        good = Response.objects.get(pk=assignment.item.response_a_id)
        errors = negative_validate(project=project, good=good.text, data=data)
        if errors:
            raise ValidationFailed("Please fix the highlighted fields.", field_errors=errors)
        slot_check(claim)
        response = Response.objects.create(
            prompt_id=good.prompt_id, text=data.text.strip(), model_name="adversarial",
            metadata={"flaw_type": data.flaw_type, "negative_of": good.pk},
        )
        try:
            negative = AdversarialNegative.objects.create(
                project=project, item_id=assignment.item_id, assignment=assignment, author=author,
                text=response.text, flaw_type=data.flaw_type, rationale=data.rationale.strip(),
                time_spent_ms=data.time_spent_ms, spec_version=project.current_spec,
                response=response, client_token=client_token,
            )
        except IntegrityError:
            raise Conflict("This submit token was already used for another item.") from None
        DerivedPair.objects.create(
            project=project, prompt_id=good.prompt_id, chosen=good, rejected=response,
            strength=Strength.STRONG, tag=PairTag.ADVERSARIAL, flaw_type=data.flaw_type,
            author=author, negative=negative,
        )
        assignment_finish(claim=claim, now=now)
        return negative, True
