"""Reads for calibration pages and exports. Nothing here is shown to annotators except
`annotator_calibration_status`, which only ever holds their own answers and rounds."""
from __future__ import annotations

from collections import Counter, defaultdict

from django.db.models import Count, Q, QuerySet

from annotation.models import Item, Membership, Project, Role
from annotation.sides import to_shown
from annotation.selectors import one_or_404

from .models import (
    AnalyticsPolicy,
    AnalyticsSnapshot,
    Anchor,
    AnchorResult,
    AnchorRevision,
    CalibrationPolicy,
    CalibrationQuestion,
    CalibrationRound,
    ResultContext,
    RoundStatus,
    Standing,
    StandingChange,
    StandingState,
    SnapshotStatus,
)
from .explanations import explanation_for_annotator, explanation_for_author
from .stats import rolling_accuracy, sparkline_points, wilson_interval

SPARKLINE_RESULTS = 60
BAD_ANCHOR_MIN_ANSWERS = 5
BAD_ANCHOR_AGREEMENT = 0.5


def policy_read(*, project: Project) -> CalibrationPolicy:
    return CalibrationPolicy.objects.filter(project=project).first() or CalibrationPolicy(project=project)


def excluded_annotator_ids(*, project: Project) -> QuerySet:
    return Standing.objects.filter(project=project, state=StandingState.EXCLUDED).values("annotator_id")


def _preview(messages: list[dict], limit: int = 90) -> str:
    text = messages[-1]["content"] if messages else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def standings_table(*, project: Project) -> list[dict]:
    """One row per annotator of the project: standing, anchor accuracy (clear-cut) with a 95%
    Wilson interval, the rolling-accuracy trend, the last change and why."""
    policy = policy_read(project=project)
    annotators = list(
        Membership.objects.filter(project=project, role=Role.ANNOTATOR)
        .select_related("user")
        .order_by("user__username")
    )
    standings = {s.annotator_id: s for s in Standing.objects.filter(project=project)}
    outcomes: dict[int, list[bool]] = defaultdict(list)
    hidden_answered: Counter = Counter()
    for annotator_id, correct, context in (
        AnchorResult.objects.filter(project=project, clear_cut=True)
        .order_by("created_at", "id")
        .values_list("annotator_id", "correct", "context")
    ):
        outcomes[annotator_id].append(correct)
        hidden_answered[annotator_id] += context == ResultContext.HIDDEN
    last_changes: dict[int, StandingChange] = {}
    for change in StandingChange.objects.filter(project=project).select_related("actor").order_by("created_at", "id"):
        last_changes[change.annotator_id] = change
    hidden_total = Anchor.objects.filter(project=project, active=True, in_calibration_set=False).count()
    rows = []
    for membership in annotators:
        user = membership.user
        series = outcomes.get(user.pk, [])
        k, n = sum(series), len(series)
        low, high = wilson_interval(k, n)
        trend = rolling_accuracy(series, policy.window_size)[-SPARKLINE_RESULTS:]
        standing = standings.get(user.pk)
        rows.append(
            {
                "annotator": user,
                "state": standing.state if standing else "",
                "state_label": standing.get_state_display() if standing else "Not started",
                "since": standing.since if standing else None,
                "cusum": standing.cusum if standing else 0.0,
                "answered": n,
                "correct": k,
                "accuracy": k / n if n else None,
                "wilson_low": low,
                "wilson_high": high,
                "sparkline": sparkline_points(trend),
                "hidden_answered": hidden_answered[user.pk],
                "hidden_total": hidden_total,
                "last_change": last_changes.get(user.pk),
            }
        )
    return rows


def anchor_agreement(*, project: Project) -> list[dict]:
    """Per anchor: how often annotators agreed with the expert. An anchor most people 'get wrong'
    is more often a wrong or not-clear-cut anchor than a room of bad annotators."""
    anchors = list(
        Anchor.objects.filter(project=project)
        .select_related("item__prompt")
        .annotate(
            answers=Count("results"),
            agreeing=Count("results", filter=Q(results__correct=True)),
        )
        .order_by("id")
    )
    distribution: dict[int, Counter] = defaultdict(Counter)
    for anchor_id, choice in AnchorResult.objects.filter(project=project).values_list("anchor_id", "choice"):
        distribution[anchor_id][choice] += 1
    rows = []
    for anchor in anchors:
        agreement = anchor.agreeing / anchor.answers if anchor.answers else None
        low, high = wilson_interval(anchor.agreeing, anchor.answers)
        rows.append(
            {
                "anchor": anchor,
                "prompt": _preview(anchor.item.prompt.messages),
                "domain": anchor.item.prompt.domain,
                "explanation": explanation_for_author(anchor.explanation),
                "answers": anchor.answers,
                "agreement": agreement,
                "wilson_low": low,
                "wilson_high": high,
                "distribution": {c: distribution[anchor.pk][c] for c in ("a", "b", "tie", "both_bad")},
                "suspect": anchor.answers >= BAD_ANCHOR_MIN_ANSWERS and (agreement or 0) < BAD_ANCHOR_AGREEMENT,
            }
        )
    return rows


def anchor_get(*, project: Project, anchor_id: int) -> Anchor:
    return one_or_404(
        Anchor.objects.filter(project=project, pk=anchor_id)
        .select_related("item__prompt", "item__response_a", "item__response_b"),
        "No such anchor.",
    )


def anchor_history(*, anchor: Anchor) -> list[AnchorRevision]:
    revisions = list(anchor.revisions.select_related("replaced_by").order_by("-revision"))
    for revision in revisions:  # shown to leads in authoring terms, never saved back
        revision.explanation = explanation_for_author(revision.explanation)
    return revisions


def anchor_explanation_readings(*, explanation: str) -> dict:
    """A stored explanation as its author reads it (Response A = the item's first response) and
    as annotators will read it with either response on the left: leads check both before saving."""
    return {
        "author": explanation_for_author(explanation),
        "a_left": explanation_for_annotator(explanation, shown_left="a"),
        "b_left": explanation_for_annotator(explanation, shown_left="b"),
    }


def item_for_anchor_form(*, project: Project, item_id: int) -> Item:
    return one_or_404(
        Item.objects.filter(project=project, pk=item_id)
        .select_related("prompt", "response_a", "response_b"),
        "No such item in this project.",
    )


def standing_history(*, project: Project, annotator_id: int | None = None) -> QuerySet[StandingChange]:
    qs = StandingChange.objects.filter(project=project).select_related("annotator", "actor", "acknowledged_by")
    if annotator_id is not None:
        qs = qs.filter(annotator_id=annotator_id)
    return qs.order_by("-created_at", "-id")


def alerts_open(*, project: Project) -> QuerySet[StandingChange]:
    """Automatic moves out of live work that no lead has acknowledged yet."""
    return standing_history(project=project).filter(
        actor__isnull=True,
        acknowledged_at__isnull=True,
        to_state__in=[StandingState.NEEDS_RETRAINING, StandingState.EXCLUDED],
    )


def annotator_calibration_status(*, project: Project, annotator) -> dict:
    """What an annotator sees about their own calibration: their standing, their open round's
    progress, and after a failed round the anchors they missed with the expert's explanation.
    Hidden anchors they met in live work are never listed here."""
    standing = Standing.objects.filter(project=project, annotator=annotator).first()
    open_round = CalibrationRound.objects.filter(project=project, annotator=annotator, status=RoundStatus.OPEN).first()
    progress = None
    if open_round is not None:
        counts = open_round.questions.aggregate(total=Count("id"), answered=Count("id", filter=Q(answered_at__isnull=False)))
        progress = {"round": open_round.number, **counts}
    last_failed = (
        CalibrationRound.objects.filter(project=project, annotator=annotator, status=RoundStatus.FAILED)
        .order_by("-number")
        .first()
    )
    missed = []
    if last_failed is not None and standing is not None and standing.state != StandingState.ACTIVE:
        for result in (
            AnchorResult.objects.filter(question__round=last_failed, correct=False)
            .select_related("anchor__item__prompt", "anchor__item__response_a", "anchor__item__response_b", "question")
            .order_by("question__position")
        ):
            # In the terms of the screen the annotator answered on: the same A/B and left/right.
            item, shown_left = result.anchor.item, result.shown_left
            left, right = (item.response_a, item.response_b) if shown_left == "a" else (item.response_b, item.response_a)
            missed.append({"prompt": _preview(result.anchor.item.prompt.messages, 200),
                           "left": _preview([{"content": left.text}], 300),
                           "right": _preview([{"content": right.text}], 300),
                           "expert_choice": to_shown(result.anchor.expert_choice, shown_left=shown_left),
                           "expert_strength": result.anchor.expert_strength,
                           "your_choice": to_shown(result.choice, shown_left=shown_left),
                           "your_strength": result.strength,
                           "explanation": explanation_for_annotator(result.anchor.explanation, shown_left=shown_left),
                           "clear_cut": result.clear_cut})
    return {
        "state": standing.state if standing else "",
        "state_label": standing.get_state_display() if standing else "Not started",
        "reason": standing.reason if standing else "",
        "round": progress,
        "last_failed_round": (
            {"number": last_failed.number, "answered": last_failed.clear_cut_answered,
             "wrong": last_failed.clear_cut_wrong, "threshold": last_failed.threshold}
            if last_failed is not None else None
        ),
        "missed": missed,
    }


def question_payload(*, question: CalibrationQuestion) -> dict:
    """A calibration question as the annotator sees it (calibration is open about being
    calibration; the expert answer comes only with the feedback)."""
    item = question.anchor.item
    left, right = (
        (item.response_a, item.response_b) if question.shown_left == "a" else (item.response_b, item.response_a)
    )
    total = CalibrationQuestion.objects.filter(round_id=question.round_id).count()
    return {
        "question": question.pk,
        "round": question.round.number,
        "position": question.position + 1,
        "total": total,
        "prompt": item.prompt.messages,
        "left": {"text": left.text},
        "right": {"text": right.text},
    }


def annotator_in_project(*, project: Project, username: str):
    return one_or_404(
        Membership.objects.filter(project=project, role=Role.ANNOTATOR, user__username=username).select_related("user"),
        "No such annotator in this project.",
    ).user


def question_for_annotator(*, question_id: int, annotator) -> CalibrationQuestion:
    return one_or_404(
        CalibrationQuestion.objects.filter(pk=question_id, round__annotator=annotator)
        .select_related("round", "anchor__item__prompt", "anchor__item__response_a", "anchor__item__response_b"),
        "No such calibration question.",
    )


# --- analytics -------------------------------------------------------------------------------

def flag_proposals_open(*, project: Project, limit: int = 100) -> list:
    """The bias flags' proposals waiting for a lead, oldest first (the calibration page)."""
    from .models import FlagProposal, ProposalStatus

    return list(FlagProposal.objects.filter(project=project, status=ProposalStatus.OPEN)
                .select_related("annotator").order_by("created_at")[:limit])


def analytics_policy_read(*, project: Project) -> AnalyticsPolicy:
    """The project's analytics settings, unsaved defaults if none were ever set."""
    return AnalyticsPolicy.objects.filter(project=project).first() or AnalyticsPolicy(project=project)


def analytics_state(*, project: Project) -> dict:
    """The latest finished snapshot (what pages show), the pending one if any, the latest failure
    if it is newer than the last success, and how many judgments came in since the shown one."""
    snapshots = AnalyticsSnapshot.objects.filter(project=project).order_by("-requested_at")
    latest = snapshots.filter(status=SnapshotStatus.SUCCEEDED).first()
    pending = snapshots.filter(status__in=[SnapshotStatus.QUEUED, SnapshotStatus.RUNNING]).defer("payload").first()
    failed = snapshots.filter(status=SnapshotStatus.FAILED).defer("payload").first()
    if failed and latest and failed.requested_at < latest.requested_at:
        failed = None
    new = 0
    if latest is not None:
        from annotation.models import Judgment

        # Counting all of a large project's judgments takes a while; counting past an id is an
        # index range scan.
        new = Judgment.objects.filter(project=project, id__gt=latest.last_judgment_id).count()  # re-asks too
    return {"latest": latest, "pending": pending, "failed": failed, "new_judgments": max(new, 0)}


def analytics_snapshot_progress(*, project: Project, snapshot_id: int) -> AnalyticsSnapshot:
    return one_or_404(AnalyticsSnapshot.objects.filter(project=project, pk=snapshot_id).defer("payload"), "No such computation.")
