"""Annotator standing: created on first contact, moved by anchor results, overridden by leads.

Every move goes through `standing_transition`, which writes the audit row (with the evidence that
caused it) and, when the annotator stops being `active`, gives back the live leases they hold.
"""
from __future__ import annotations

import random
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import OuterRef, Subquery
from django.http import Http404
from django.utils import timezone

from annotation.errors import ValidationFailed
from annotation.models import Project
from annotation.rows import columns, from_row
from annotation.services.routing import leases_release

from ..models import (
    Anchor,
    AnchorResult,
    CalibrationPolicy,
    CalibrationQuestion,
    CalibrationRound,
    ResultContext,
    RoundStatus,
    Standing,
    StandingChange,
    StandingState,
)
from ..errors import CalibrationRequired
from ..stats import CusumParams, cusum_step
from .policy import policy_get

_rng = random.SystemRandom()

AUTOMATIC_ALERT_CAUSES = ("round_failed", "window", "cusum")


def _has_calibration_set(project: Project) -> bool:
    return Anchor.objects.filter(project=project, active=True, in_calibration_set=True).exists()


def standing_with_policy(*, project: Project, annotator) -> tuple[Standing, CalibrationPolicy]:
    """The annotator's standing and the project's policy, in one query when both exist.

    First contact creates the standing: `calibrating` (with a round) when the project has a
    calibration set, otherwise `active` (there is nothing to calibrate against yet)."""
    # One hand-written statement (annotation/rows.py): every next asks, and the ORM's
    # select_related lookup cost more CPU than the database spent on it.
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT {columns(Standing, "s")}, {columns(CalibrationPolicy, "p")} FROM "{Standing._meta.db_table}" s '
            f'LEFT JOIN "{CalibrationPolicy._meta.db_table}" p ON p."project_id" = s."project_id" '
            f'WHERE s."project_id" = %s AND s."annotator_id" = %s',
            [project.pk, annotator.pk],
        )
        row = cursor.fetchone()
    standing = None
    if row is not None:
        standing, rest = from_row(Standing, row)
        standing.project = project
        if rest[0] is not None:  # the policy's id: the project has a policy row
            policy, _ = from_row(CalibrationPolicy, rest)
            policy.project = project
            return standing, policy
    policy = policy_get(project=project)
    if standing is None:
        standing = _standing_create(project=project, annotator=annotator)
    return standing, policy


def standing_work_check(*, user, project: Project, known: dict | None = None) -> None:
    """Live work (submit, edit, skip, ...) only while `active`: an annotator moved to needs
    retraining or excluded, even mid-lease, writes nothing more until a lead brings them back.
    Registered with annotation's work gate (calibration/apps.py). `known["standing_state"]` is
    the state as the claim's locking query read it (CLAIM_READS); without a standing row yet, the
    standing is made here as on first contact."""
    state = (known or {}).get("standing_state")
    if state is None:
        state = standing_with_policy(project=project, annotator=user)[0].state
    if state != StandingState.ACTIVE:
        raise CalibrationRequired(state)


# What calibration needs to know about a claimed assignment, read in the claim's own locking query
# (annotation.permissions.work_gate_register): the annotator's standing for the gate; whether the
# item is an anchor, and whether its project shows hidden-anchor feedback, for the after-submit
# scoring (services/queue.py); the project's re-ask rate, for planning a swapped re-ask. The same
# subqueries run for every claim, anchor or not.
CLAIM_READS = {
    "standing_state": lambda user: Subquery(
        Standing.objects.filter(project_id=OuterRef("project_id"), annotator_id=user.pk).values("state")[:1]),
    "anchor_id": lambda user: Subquery(Anchor.objects.filter(item_id=OuterRef("item_id")).values("id")[:1]),
    "shows_hidden_feedback": lambda user: Subquery(
        CalibrationPolicy.objects.filter(project_id=OuterRef("project_id")).values("show_hidden_feedback")[:1]),
    # Whether a submitted live comparison may plan a swapped re-ask (services/reasks.py).
    "reask_rate": lambda user: Subquery(
        CalibrationPolicy.objects.filter(project_id=OuterRef("project_id")).values("reask_rate")[:1]),
}


def _standing_create(*, project: Project, annotator) -> Standing:
    now = timezone.now()
    gated = _has_calibration_set(project)
    state = StandingState.CALIBRATING if gated else StandingState.ACTIVE
    reason = (
        "New in the project: the calibration set comes first."
        if gated
        else "New in the project; it has no calibration set yet, so live work is open."
    )
    try:
        with transaction.atomic():
            standing = Standing.objects.create(
                project=project, annotator=annotator, state=state, since=now, reason=reason
            )
            StandingChange.objects.create(
                project=project, annotator=annotator, from_state="", to_state=state, cause="joined",
                reason=reason, evidence={},
            )
            if gated:
                round_create(project=project, annotator=annotator)
    except IntegrityError:
        # A second request of the same annotator created it first.
        standing = Standing.objects.get(project=project, annotator=annotator)
    return standing


def standing_transition(
    *,
    standing: Standing,
    to_state: str,
    cause: str,
    reason: str,
    evidence: dict | None = None,
    actor=None,
    now: datetime | None = None,
) -> StandingChange:
    now = now or timezone.now()
    change = StandingChange.objects.create(
        project_id=standing.project_id,
        annotator_id=standing.annotator_id,
        from_state=standing.state,
        to_state=to_state,
        cause=cause,
        reason=reason,
        evidence=evidence or {},
        actor=actor,
    )
    leaving_live_work = standing.state == StandingState.ACTIVE and to_state != StandingState.ACTIVE
    standing.state = to_state
    standing.since = now
    standing.reason = reason
    standing.cusum = 0.0  # the rolling window and the CUSUM start afresh in the new state
    standing.save(update_fields=["state", "since", "reason", "cusum", "failed_rounds", "updated_at"])
    if leaving_live_work:
        leases_release(project=standing.project, annotator=standing.annotator, now=now)
    return change


def _locked_standing(*, project: Project, annotator) -> Standing:
    standing_with_policy(project=project, annotator=annotator)  # make sure it exists
    return Standing.objects.select_for_update().select_related("project", "annotator").get(
        project=project, annotator=annotator
    )


@transaction.atomic
def standing_override(*, project: Project, annotator, to_state: str, reason: str, actor) -> Standing:
    """A lead sets an annotator's standing by hand, with a reason that goes into the audit.
    Setting `calibrating` assigns a fresh calibration round."""
    if to_state not in StandingState.values:
        raise ValidationFailed("Unknown standing.", field_errors={"state": f"Use one of {', '.join(StandingState.values)}."})
    if not reason.strip():
        raise ValidationFailed("Say why: the reason goes into the audit trail.", field_errors={"reason": "Required."})
    if to_state == StandingState.CALIBRATING:
        recalibration_assign(project=project, annotator=annotator, assigned_by=actor, reason=reason)
        return Standing.objects.get(project=project, annotator=annotator)
    standing = _locked_standing(project=project, annotator=annotator)
    _cancel_open_round(project=project, annotator=annotator)
    standing_transition(
        standing=standing, to_state=to_state, cause="override", reason=reason.strip(), actor=actor,
        evidence={"previous_reason": standing.reason},
    )
    return standing


def _cancel_open_round(*, project: Project, annotator) -> None:
    CalibrationRound.objects.filter(project=project, annotator=annotator, status=RoundStatus.OPEN).update(
        status=RoundStatus.CANCELLED, finished_at=timezone.now()
    )


@transaction.atomic
def recalibration_assign(*, project: Project, annotator, assigned_by, reason: str = "") -> CalibrationRound:
    """A fresh calibration round: the annotator sees only the calibration set until they pass it."""
    standing = _locked_standing(project=project, annotator=annotator)
    _cancel_open_round(project=project, annotator=annotator)
    round_ = round_create(project=project, annotator=annotator, assigned_by=assigned_by)
    standing_transition(
        standing=standing,
        to_state=StandingState.CALIBRATING,
        cause="recalibration",
        reason=reason.strip() or "A lead assigned a fresh calibration round.",
        evidence={"round": round_.number, "questions": round_.questions.count()},
        actor=assigned_by,
    )
    return round_


def round_create(*, project: Project, annotator, assigned_by=None) -> CalibrationRound:
    anchors = list(
        Anchor.objects.filter(project=project, active=True, in_calibration_set=True).values_list("pk", flat=True)
    )
    if not anchors:
        raise ValidationFailed("This project has no calibration set yet: add anchors and choose the set first.")
    _rng.shuffle(anchors)
    last = (
        CalibrationRound.objects.filter(project=project, annotator=annotator).order_by("-number").first()
    )
    round_ = CalibrationRound.objects.create(
        project=project, annotator=annotator, number=(last.number + 1) if last else 1, assigned_by=assigned_by
    )
    CalibrationQuestion.objects.bulk_create(
        [
            CalibrationQuestion(round=round_, anchor_id=anchor_id, position=i, shown_left=_rng.choice("ab"))
            for i, anchor_id in enumerate(anchors)
        ]
    )
    return round_


@transaction.atomic
def round_finish(*, round_: CalibrationRound, policy: CalibrationPolicy, now: datetime | None = None) -> Standing:
    """Judge a completed round by the pass rule and move the annotator accordingly."""
    now = now or timezone.now()
    standing = Standing.objects.select_for_update().select_related("project", "annotator").get(
        project_id=round_.project_id, annotator_id=round_.annotator_id
    )
    threshold = policy.disagreement_threshold
    missed = list(
        AnchorResult.objects.filter(question__round=round_, clear_cut=True, correct=False)
        .order_by("question__position")
        .values_list("anchor_id", flat=True)
    )
    rate = round_.disagreement
    round_.threshold = threshold
    round_.finished_at = now
    evidence = {
        "round": round_.number,
        "clear_cut_answered": round_.clear_cut_answered,
        "clear_cut_wrong": round_.clear_cut_wrong,
        "disagreement": rate,
        "threshold": threshold,
        "missed_anchors": missed,
    }
    if rate is None or rate <= threshold:
        round_.status = RoundStatus.PASSED
        round_.save(update_fields=["status", "threshold", "finished_at"])
        reason = (
            f"Passed calibration round {round_.number}: disagreed with the experts on "
            f"{round_.clear_cut_wrong} of {round_.clear_cut_answered} clear-cut anchors "
            f"(limit {threshold:.0%})."
        )
        standing.failed_rounds = 0
        standing_transition(standing=standing, to_state=StandingState.ACTIVE, cause="round_passed",
                            reason=reason, evidence=evidence, now=now)
        return standing
    round_.status = RoundStatus.FAILED
    round_.save(update_fields=["status", "threshold", "finished_at"])
    standing.failed_rounds += 1
    limit = policy.exclude_after_failed_rounds
    excluded = bool(limit) and standing.failed_rounds >= limit
    reason = (
        f"Failed calibration round {round_.number}: disagreed with the experts on "
        f"{round_.clear_cut_wrong} of {round_.clear_cut_answered} clear-cut anchors "
        f"({rate:.0%}, limit {threshold:.0%})."
    )
    if excluded:
        reason += f" That is {standing.failed_rounds} failed rounds in a row: excluded from reward-model training."
    evidence["failed_rounds"] = standing.failed_rounds
    standing_transition(
        standing=standing,
        to_state=StandingState.EXCLUDED if excluded else StandingState.NEEDS_RETRAINING,
        cause="round_failed",
        reason=reason,
        evidence=evidence,
        now=now,
    )
    return standing


def anchor_result_create(*, anchor: Anchor, project_id: int, annotator_id: int, context: str, shown_left: str,
                         time_spent_ms: int, question=None, judgment=None, **answer) -> AnchorResult:
    """One scored answer on an anchor, from a calibration round or hidden in the live queue:
    `answer` is its canonical choice, strength, dimension choices (and rationale); it is correct
    when its choice is the expert's."""
    return AnchorResult.objects.create(
        project_id=project_id, anchor=anchor, annotator_id=annotator_id, context=context, question=question,
        judgment=judgment, time_spent_ms=time_spent_ms, shown_left=shown_left,
        correct=answer["choice"] == anchor.expert_choice, clear_cut=anchor.clear_cut, **answer,
    )


def hidden_result_record(
    *, judgment, anchor: Anchor, policy: CalibrationPolicy, now: datetime | None = None
) -> AnchorResult:
    """Score a live-queue answer on a hidden anchor and let it move an active annotator:
    by the rolling window of clear-cut results since they became active, and by the CUSUM."""
    now = now or timezone.now()
    result = anchor_result_create(
        anchor=anchor, project_id=judgment.project_id, annotator_id=judgment.annotator_id,
        context=ResultContext.HIDDEN, judgment=judgment, time_spent_ms=judgment.time_spent_ms,
        shown_left=judgment.shown_left, choice=judgment.choice, strength=judgment.strength,
        dimension_choices=judgment.dimension_choices,
    )
    if not anchor.clear_cut:
        return result
    standing = Standing.objects.select_for_update().select_related("project", "annotator").filter(
        project_id=judgment.project_id, annotator_id=judgment.annotator_id
    ).first()
    if standing is None or standing.state != StandingState.ACTIVE:
        return result
    params = CusumParams(p0=policy.cusum_p0, p1=policy.cusum_p1, h=policy.cusum_h)
    before = standing.cusum
    standing.cusum = cusum_step(before, not result.correct, params)
    if standing.cusum >= params.h:
        standing_transition(
            standing=standing,
            to_state=StandingState.NEEDS_RETRAINING,
            cause="cusum",
            reason=(
                f"Drift alarm: the CUSUM of errors on hidden anchors reached {standing.cusum:.2f} "
                f"(alarm at {params.h:g}; tuned for an error rate rising from {params.p0:.0%} to {params.p1:.0%})."
            ),
            evidence={"cusum": standing.cusum, "h": params.h, "p0": params.p0, "p1": params.p1,
                      "last_anchor": anchor.pk, **_window_evidence(standing, policy)},
            now=now,
        )
        return result
    window = _window_evidence(standing, policy)
    if window["answered"] >= policy.window_min and window["disagreement"] > policy.disagreement_threshold:
        standing_transition(
            standing=standing,
            to_state=StandingState.NEEDS_RETRAINING,
            cause="window",
            reason=(
                f"Disagreed with the experts on {window['wrong']} of the last {window['answered']} "
                f"clear-cut hidden anchors ({window['disagreement']:.0%}, limit {policy.disagreement_threshold:.0%})."
            ),
            evidence=window,
            now=now,
        )
        return result
    standing.save(update_fields=["cusum", "updated_at"])
    return result


def _window_evidence(standing: Standing, policy: CalibrationPolicy) -> dict:
    recent = list(
        AnchorResult.objects.filter(
            project_id=standing.project_id,
            annotator_id=standing.annotator_id,
            context=ResultContext.HIDDEN,
            clear_cut=True,
            created_at__gte=standing.since,
        )
        .order_by("-created_at", "-id")
        .values_list("anchor_id", "correct")[: policy.window_size]
    )
    wrong = [anchor_id for anchor_id, correct in recent if not correct]
    return {
        "answered": len(recent),
        "wrong": len(wrong),
        "disagreement": len(wrong) / len(recent) if recent else 0.0,
        "window_size": policy.window_size,
        "missed_anchors": wrong,
    }


def change_acknowledge(*, project: Project, change_id: int, lead) -> StandingChange:
    # An alert of another project, or none at all, is not found (404), as the selectors answer;
    # a bare .get() made it a 500 on the page.
    change = StandingChange.objects.filter(pk=change_id, project=project).first()
    if change is None:
        raise Http404("No such alert in this project.")
    if change.acknowledged_at is None:
        change.acknowledged_at = timezone.now()
        change.acknowledged_by = lead
        change.save(update_fields=["acknowledged_at", "acknowledged_by"])
    return change
