"""What an annotator works on: the calibration round while they are not yet active, and what
calibration adds to the live queue (annotation/services/queue.py) once they are: the standing gate
and hidden anchors mixed in, registered as QUEUE_HOOKS by calibration's AppConfig.

Hidden anchors go through the same lease, payload and submit path as live items. The only
difference in the work done per request is which rows the candidate query reads; every submit
looks up "is this item an anchor?" whether it is or not.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.utils import timezone

from annotation.errors import Conflict, ValidationFailed
from annotation.models import Assignment, ItemKind, Judgment, Project
from annotation.services.judgments import JudgmentInput, canonical_fields, judgment_validate
from annotation.services.queue import Deferred, QueueHooks
from annotation.services.routing import assignment_lease, live_item_available
from annotation.sides import to_shown

from ..errors import CalibrationRequired
from ..explanations import explanation_for_annotator
from ..models import (
    Anchor,
    AnchorResult,
    CalibrationQuestion,
    CalibrationRound,
    ResultContext,
    RoundStatus,
    StandingState,
)
from .dynamic_k import item_target_update
from .reasks import reask_draw, reask_plan, reask_serve_chance
from .standing import anchor_result_create, hidden_result_record, round_finish, standing_with_policy

_rng = random.SystemRandom()


def _not_met_in_calibration(*, project: Project, annotator) -> Q:
    """Items this annotator has not met in a calibration round (a repeat would be recognisable,
    and they saw its expert answer there). Applied to live requests too, where it never excludes
    anything: both kinds of request then cost the same (bench/hidden_gold_timing.py). Retired
    anchors need no filter here: their item is paused."""
    seen_in_rounds = CalibrationQuestion.objects.filter(
        round__project=project, round__annotator=annotator
    ).values("anchor__item_id")
    return ~Q(pk__in=seen_in_rounds)


def _admit(*, project: Project, annotator):
    """Live work is for active annotators only; anyone else gets CalibrationRequired."""
    standing, policy = standing_with_policy(project=project, annotator=annotator)
    if standing.state != StandingState.ACTIVE:
        raise CalibrationRequired(standing.state)
    return policy


def _pick_hidden(*, project: Project, annotator, now: datetime, narrow, state) -> Assignment | None:
    """A hidden anchor with the project's probability (an independent draw per request: no schedule
    to learn, "every 10th is gold"), else one of the annotator's pending swapped re-asks with its
    own chance (services/reasks.py), else None and the live lease follows."""
    policy = state
    # Gold only hides among live work: once no live comparison is left for this annotator
    # (finished, skipped, all leased by others, paused), an anchor would be recognisable by
    # coming at all, so anchors stop too and the annotator is told that nothing is left. Both
    # kinds of request run this probe, so they keep the same query shape.
    # Anchors are comparisons: among only rankings or rewrites one would stand out as well.
    live_comparison_left = live_item_available(
        project=project, annotator=annotator, narrow=narrow, kind=ItemKind.COMPARISON
    )
    if not live_comparison_left:
        return None
    if policy.hidden_rate > 0 and _rng.random() < policy.hidden_rate:
        return assignment_lease(project=project, annotator=annotator, now=now, held_out=True, narrow=narrow)
    # A re-ask goes through the same lease statement; when none is pending the live lease follows.
    if policy.reask_rate > 0 and _rng.random() < reask_serve_chance(policy.reask_rate):
        return assignment_lease(project=project, annotator=annotator, now=now, reask=True, narrow=narrow)
    return None


def expert_feedback(*, anchor: Anchor, shown_left: str, correct: bool, yours: dict | None = None) -> dict:
    """The expert answer in the terms the annotator saw (left/right), the explanation naming
    each response by the letter and side it had on their screen, and their own answer beside it
    (`yours`: canonical choice and strength)."""
    yours = yours or {}
    return {
        "correct": correct,
        "expert_choice": to_shown(anchor.expert_choice, shown_left=shown_left),
        "expert_strength": anchor.expert_strength,
        "expert_dimensions": {
            k: to_shown(v, shown_left=shown_left) for k, v in anchor.expert_dimension_choices.items()
        },
        "your_choice": to_shown(yours["choice"], shown_left=shown_left) if yours.get("choice") else "",
        "your_strength": yours.get("strength", ""),
        "explanation": explanation_for_annotator(anchor.explanation, shown_left=shown_left),
        "clear_cut": anchor.clear_cut,
    }


def _after_submit(*, judgment: Judgment, created: bool, now: datetime | None, defer: Deferred | None,
                  known: dict) -> dict | None:
    """An answer on a hidden anchor is scored too (inside the submit's transaction).

    Scoring (a result row, the window, the CUSUM, maybe a change of standing) costs several
    queries, which made an anchor's submit measurably slower than a live one (bench/
    hidden_gold_timing.py: +9 ms, Mann-Whitney p < 1e-5). Web callers therefore pass `defer`,
    which runs the scoring after the response has gone out; the lookup below is the same one
    query for both kinds. Called without `defer` (services, tests, scripts) it scores at once.
    If the process dies before deferred scoring runs, `hidden_answers_score_missing` (beat,
    every minute) scores it later: nothing is lost. Returns the expert's feedback when the
    project shows it.
    """
    # Whether the item is an anchor, whether the project shows feedback and its re-ask rate were
    # read by the claim's locking query (standing.CLAIM_READS): the same statement for every submit.
    if not created:
        return None
    if judgment.by_judge:
        # An AI judge labels items it was handed (training/services/judges.py): it holds no slot of k, so
        # dynamic k has nothing to re-target, and it is never re-asked. An anchor it is handed is
        # scored at once, towards its standing; it gets no feedback.
        if known.get("anchor_id") is not None:
            hidden_answer_score(judgment_id=judgment.pk, now=now)
        return None
    item = judgment.assignment.item
    if judgment.assignment.project.dynamic_k and item.in_live_queue and item.reask_of_id is None:
        # Dynamic k: one more judgment wanted while the winner is in doubt (services/dynamic_k.py).
        item_id = item.pk
        if defer is not None:
            transaction.on_commit(lambda: defer(lambda: item_target_update(item_id=item_id)))
        else:
            item_target_update(item_id=item_id)
    if known["anchor_id"] is None:
        rate = known.get("reask_rate")
        if rate and reask_draw(judgment=judgment, rate=rate):
            project_id, annotator_id = judgment.project_id, judgment.annotator_id
            if defer is not None:
                transaction.on_commit(lambda: defer(lambda: reask_plan(project_id=project_id, annotator_id=annotator_id)))
            else:
                reask_plan(project_id=project_id, annotator_id=annotator_id)
        return None
    shows_feedback = bool(known["shows_hidden_feedback"])
    if defer is not None and not shows_feedback:
        judgment_id = judgment.pk
        transaction.on_commit(lambda: defer(lambda: hidden_answer_score(judgment_id=judgment_id)))
        return None
    result = hidden_answer_score(judgment_id=judgment.pk, now=now)
    if not shows_feedback:
        return None
    anchor = Anchor.objects.get(item_id=judgment.item_id)
    return expert_feedback(anchor=anchor, shown_left=judgment.shown_left, correct=result.correct,
                           yours={"choice": judgment.choice, "strength": judgment.strength})


# What calibration adds to the annotator's queue (annotation/services/queue.py): the standing gate,
# items met in a calibration round kept out, hidden anchors mixed in, and their scoring.
QUEUE_HOOKS = QueueHooks(admit=_admit, narrow=_not_met_in_calibration, pick=_pick_hidden, after_submit=_after_submit)


def hidden_answer_score(*, judgment_id: int, now: datetime | None = None) -> AnchorResult | None:
    """Score one live-queue judgment on an anchor (once; a second call returns the first result)."""
    with transaction.atomic():
        judgment = Judgment.objects.select_for_update().select_related("project").get(pk=judgment_id)
        existing = AnchorResult.objects.filter(judgment=judgment).first()
        if existing is not None:
            return existing
        anchor = Anchor.objects.filter(item_id=judgment.item_id).first()
        if anchor is None:
            return None
        _standing, policy = standing_with_policy(project=judgment.project, annotator=judgment.annotator)
        return hidden_result_record(judgment=judgment, anchor=anchor, policy=policy, now=now)


def hidden_answers_score_missing(*, limit: int = 1000) -> int:
    """Score judgments on anchors that have no result yet (deferred scoring that never ran)."""
    missing = list(
        Judgment.objects.filter(item__anchor__isnull=False, anchor_result__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    for judgment_id in missing:
        hidden_answer_score(judgment_id=judgment_id)
    return len(missing)


# ---------------------------------------------------------------- calibration rounds


def question_next(*, project: Project, annotator) -> CalibrationQuestion | None:
    """The next unanswered question of the annotator's open round (None: no open round)."""
    standing, _policy = standing_with_policy(project=project, annotator=annotator)
    if standing.state != StandingState.CALIBRATING:
        return None
    return (
        CalibrationQuestion.objects.filter(
            round__project=project, round__annotator=annotator, round__status=RoundStatus.OPEN,
            answered_at__isnull=True,
        )
        .select_related("round", "anchor__item__prompt", "anchor__item__response_a", "anchor__item__response_b")
        .order_by("position")
        .first()
    )


@dataclass
class CalibrationAnswerOutcome:
    result: AnchorResult
    feedback: dict
    round: CalibrationRound
    finished: bool
    state: str  # the annotator's standing after this answer


def calibration_answer(
    *, question_id: int, annotator, data: JudgmentInput, now: datetime | None = None
) -> CalibrationAnswerOutcome:
    """Answer one calibration question; the expert answer comes back as feedback. The last answer
    of a round judges the round. A repeated answer returns the first one (no double counting)."""
    now = now or timezone.now()
    with transaction.atomic():
        question = (
            CalibrationQuestion.objects.select_for_update(of=("self",))
            .select_related("round__project", "anchor")
            .filter(pk=question_id, round__annotator=annotator)
            .first()
        )
        if question is None:
            raise Http404("No such calibration question.")
        round_ = question.round
        anchor = question.anchor
        if question.answered_at is not None:
            result = AnchorResult.objects.get(question=question)
            return CalibrationAnswerOutcome(
                result=result,
                feedback=expert_feedback(anchor=anchor, shown_left=question.shown_left, correct=result.correct,
                                         yours={"choice": result.choice, "strength": result.strength}),
                round=round_, finished=round_.status != RoundStatus.OPEN,
                state=standing_with_policy(project=round_.project, annotator=annotator)[0].state,
            )
        if round_.status != RoundStatus.OPEN:
            raise Conflict("This calibration round is closed.")
        errors = judgment_validate(project=round_.project, data=data)
        if errors:
            raise ValidationFailed("Please fix the highlighted fields.", field_errors=errors)
        fields = canonical_fields(data, shown_left=question.shown_left)
        result = anchor_result_create(
            anchor=anchor, project_id=round_.project_id, annotator_id=annotator.pk,
            context=ResultContext.CALIBRATION, question=question, time_spent_ms=data.time_spent_ms,
            shown_left=question.shown_left, **fields,
        )
        correct = result.correct
        question.answered_at = now
        question.save(update_fields=["answered_at"])
        round_ = CalibrationRound.objects.select_for_update().get(pk=round_.pk)
        if anchor.clear_cut:
            round_.clear_cut_answered += 1
            round_.clear_cut_wrong += 0 if correct else 1
            round_.save(update_fields=["clear_cut_answered", "clear_cut_wrong"])
        unanswered = round_.questions.filter(answered_at__isnull=True).exists()
        _standing, policy = standing_with_policy(project=round_.project, annotator=annotator)
        state = StandingState.CALIBRATING
        if not unanswered:
            state = round_finish(round_=round_, policy=policy, now=now).state
        return CalibrationAnswerOutcome(
            result=result,
            feedback=expert_feedback(anchor=anchor, shown_left=question.shown_left, correct=correct, yours=fields),
            round=round_,
            finished=not unanswered,
            state=state,
        )
