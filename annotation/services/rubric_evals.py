"""Rubric evaluation: one response, its prompt, and the rubric of its behaviour dimension; a person
answers each check pass, fail or not applicable, with a rationale.

The items are made by whoever evaluates something (training/services/human_suite.py makes them
from a policy run's checkpoints and its baseline). Nothing on the item says where its response
came from: the annotator sees the prompt, the response and the checks, as for any other answer.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..errors import Conflict, ValidationFailed
from ..models import ItemKind, ItemRubric, Item, Project, Prompt, Response, RubricAnswer, RubricVerdict
from ..rubrics import MAX_CHECKS
from .judgments import rationale_errors
from .work import assignment_claim, assignment_finish, slot_check

MAX_RATERS = 5


@dataclass
class RubricTask:
    """One response to evaluate: the conversation, the answer and its dimension's checks."""

    messages: list
    domain: str
    text: str
    dimension: str
    checks: list[str]


@transaction.atomic
def rubric_items_create(*, project: Project, tasks: list[RubricTask], raters: int = 1, priority: int = 0,
                        source: str = "behaviour_suite", tags: list[str] | None = None) -> list[Item]:
    """One rubric-evaluation item per task, in the order given (the queue serves equal priorities
    oldest first, so the caller's order is the serving order). Each gets its own copy of the prompt
    (source `behaviour_suite`), so nothing else that reads the original prompt sees it."""
    if not 1 <= raters <= MAX_RATERS:
        raise ValueError(f"raters must be 1 to {MAX_RATERS}")
    for task in tasks:
        if not task.checks or len(task.checks) > MAX_CHECKS:
            raise ValueError(f"a rubric has 1 to {MAX_CHECKS} checks")
    prompts = Prompt.objects.bulk_create([
        Prompt(project=project, messages=t.messages, domain=t.domain, tags=list(tags or []), source=source)
        for t in tasks])
    responses = Response.objects.bulk_create([
        Response(prompt=p, text=t.text) for p, t in zip(prompts, tasks)])  # no model name: nothing to give away
    items = Item.objects.bulk_create([
        Item(project=project, kind=ItemKind.RUBRIC, prompt=p, response_a=r, target_judgments=raters,
             priority=priority)
        for p, r in zip(prompts, responses)])
    ItemRubric.objects.bulk_create([
        ItemRubric(item=item, dimension=t.dimension, checks=list(t.checks), spec_version=project.current_spec)
        for item, t in zip(items, tasks)])
    return items


@dataclass
class RubricInput:
    answers: list[str]  # one of pass/fail/na per check, in the rubric's order
    rationale: str = ""
    time_spent_ms: int = 0


def rubric_validate(*, project: Project, checks: list[str], data: RubricInput) -> dict[str, str]:
    errors: dict[str, str] = {}
    answers = data.answers if isinstance(data.answers, list) else []
    if len(answers) != len(checks):
        errors["answers"] = f"Answer each of the {len(checks)} checks (pass, fail or not applicable)."
    else:
        missing = [i + 1 for i, a in enumerate(answers) if a not in RubricVerdict.values]
        if missing:
            errors["answers"] = (f"Answer check{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))}: pass, "
                                 "fail or not applicable.")
        errors.update({f"check_{n}": "Pass, fail or not applicable?" for n in missing})
    errors.update(rationale_errors(project=project, rationale=data.rationale, time_spent_ms=data.time_spent_ms,
                                   explaining="what passed and what failed"))
    return errors


def rubric_submit(
    *, assignment_id: int, author, data: RubricInput, client_token: uuid.UUID, now: datetime | None = None
) -> tuple[RubricAnswer, bool]:
    now = now or timezone.now()
    with transaction.atomic():
        claim = assignment_claim(
            assignment_id=assignment_id, annotator=author, kind=ItemKind.RUBRIC,
            replay=lambda: RubricAnswer.objects.filter(author=author, client_token=client_token).first(),
        )
        if claim.replay is not None:
            return claim.replay, False
        assignment = claim.assignment
        project = assignment.project
        rubric = ItemRubric.objects.get(item_id=assignment.item_id)
        errors = rubric_validate(project=project, checks=rubric.checks, data=data)
        if errors:
            raise ValidationFailed("Please fix the highlighted fields.", field_errors=errors)
        slot_check(claim)
        try:
            answer = RubricAnswer.objects.create(
                project=project, item_id=assignment.item_id, assignment=assignment, author=author,
                answers=list(data.answers), rationale=data.rationale.strip(), time_spent_ms=data.time_spent_ms,
                spec_version=project.current_spec, client_token=client_token)
        except IntegrityError:
            raise Conflict("This submit token was already used for another item.") from None
        assignment_finish(claim=claim, now=now)
        return answer, True
