"""An annotator's own history in a project: the "My work" lists and the session view (done
today, the daily goal, time on task, the current stretch for the break reminder).

Nothing here tells a hidden anchor from a live item: a judgment on an anchor is a Judgment like
any other, listed, counted and editable the same way (its anchor score was recorded when it was
submitted, so an edit cannot change it), and no row carries an item id.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.paginator import Page, Paginator
from django.db.models import Sum
from django.utils import timezone

from .models import (
    AdversarialNegative,
    Assignment,
    AssignmentStatus,
    DailyGoal,
    Judgment,
    Membership,
    Project,
    RankingJudgment,
    Rewrite,
    Role,
    RubricAnswer,
)
from .ranking import format_order
from .services.judgments import editable_until
from .sides import to_shown

KINDS = {
    "comparisons": ("Comparisons", Judgment),
    "rankings": ("Rankings", RankingJudgment),
    "rewrites": ("Rewrites", Rewrite),
    "negatives": ("Adversarial negatives", AdversarialNegative),
    "rubrics": ("Rubric evaluations", RubricAnswer),
}
PAGE_SIZE = 25

# A pause of this long ends a stretch of work; after a stretch this long the break reminder shows.
BREAK_GAP = timedelta(minutes=10)
BREAK_AFTER = timedelta(minutes=50)
STRETCH_LOOKBACK = timedelta(hours=12)


def _author_field(model) -> str:
    return "annotator" if model in (Judgment, RankingJudgment) else "author"


def my_work_counts(*, project: Project, annotator) -> dict[str, int]:
    return {
        key: model.objects.filter(project=project, **{_author_field(model): annotator}).count()
        for key, (_label, model) in KINDS.items()
    }


def my_work_page(*, project: Project, annotator, kind: str, page: int | str = 1, now: datetime | None = None) -> Page:
    """One page of the annotator's own work of one kind, newest first. Comparison rows carry the
    choice in the terms the annotator saw (A/B by side) and until when they may be edited."""
    _label, model = KINDS[kind]
    qs = model.objects.filter(project=project, **{_author_field(model): annotator}).select_related("item__prompt")
    if model is Judgment:
        qs = qs.select_related("item__response_a", "item__response_b")
    elif model in (Rewrite, AdversarialNegative, RubricAnswer):
        qs = qs.select_related("item__response_a")
    page_obj = Paginator(qs.order_by("-created_at", "-id"), PAGE_SIZE).get_page(page)
    for row in page_obj.object_list:
        row.turns = row.item.prompt.messages
        if model is RankingJudgment:
            # In the letters the annotator saw (A = top of their screen), as they typed it.
            position = {rid: i for i, rid in enumerate(row.shown_order)}
            row.shown_ranking_text = format_order([[position[rid] for rid in tier] for tier in row.ranking])
    if model is Judgment:
        decorate_comparisons(project=project, rows=page_obj.object_list, now=now)
    return page_obj


def my_judgment(*, project: Project, annotator, judgment_id: int, now: datetime | None = None) -> Judgment | None:
    """One of the annotator's own comparisons as a My work row (None: not theirs, or elsewhere)."""
    row = (
        Judgment.objects.filter(pk=judgment_id, project=project, annotator=annotator)
        .select_related("item__prompt", "item__response_a", "item__response_b").first()
    )
    if row is not None:
        row.turns = row.item.prompt.messages
        decorate_comparisons(project=project, rows=[row], now=now)
    return row


def decorate_comparisons(*, project: Project, rows, now: datetime | None = None) -> None:
    """Adds what a comparison row shows: both texts by the side they were shown on, the choice and
    dimensions in those terms (A/B), and until when it may be edited."""
    now = now or timezone.now()
    for row in rows:
        left, right = row.item.response_a, row.item.response_b
        if row.shown_left != "a":
            left, right = right, left
        row.left_text, row.right_text = left.text, right.text
        row.shown_choice = to_shown(row.choice, shown_left=row.shown_left)
        row.shown_dimensions = {k: to_shown(v, shown_left=row.shown_left) for k, v in row.dimension_choices.items()}
        row.dimension_list = [(d["label"], row.shown_dimensions[d["key"]])
                              for d in project.dimensions if d["key"] in row.shown_dimensions]
        row.editable_until = editable_until(submitted_at=row.created_at, project=project)
        row.editable = row.editable_until is not None and now <= row.editable_until


@dataclass
class Session:
    done_today: int
    goal: int  # 0: no goal
    goal_set_by_project: bool
    time_on_task_ms: int
    stretch_started_at: datetime | None  # None: no stretch going on (last task over BREAK_GAP ago)
    last_done_at: datetime | None
    break_due: bool

    @property
    def goal_percent(self) -> int:
        return min(100, round(100 * self.done_today / self.goal)) if self.goal else 0

    @property
    def stretch_minutes(self) -> int:
        if self.stretch_started_at is None or self.last_done_at is None:
            return 0
        return int((self.last_done_at - self.stretch_started_at).total_seconds() // 60)


def goal_for(*, project: Project, annotator) -> tuple[int, bool]:
    """The annotator's daily goal and whether it is the project's default (not their own)."""
    own = DailyGoal.objects.filter(project=project, user=annotator).values_list("target", flat=True).first()
    if own is not None:
        return own, False
    return project.daily_goal, True


def annotator_session(*, project: Project, annotator, now: datetime | None = None) -> Session:
    """Today so far (the server's local day): tasks of every kind finished, time on task as the
    browser measured it, and the stretch of work going on (which may have begun yesterday)."""
    now = now or timezone.now()
    day_start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    # A stretch can run over midnight: read back far enough for the longest one that matters.
    since = min(day_start, now - STRETCH_LOOKBACK)
    finished = list(
        Assignment.objects.filter(
            project=project, annotator=annotator, status=AssignmentStatus.SUBMITTED, finished_at__gte=since
        ).order_by("finished_at").values_list("finished_at", flat=True)
    )
    spent = 0
    for key, (_label, model) in KINDS.items():
        spent += model.objects.filter(
            project=project, created_at__gte=day_start, **{_author_field(model): annotator}
        ).aggregate(ms=Sum("time_spent_ms"))["ms"] or 0
    stretch_start = None
    previous = None
    for at in finished:
        if previous is None or at - previous > BREAK_GAP:
            stretch_start = at
        previous = at
    going_on = previous is not None and now - previous <= BREAK_GAP
    if not going_on:
        stretch_start = None
    goal, from_project = goal_for(project=project, annotator=annotator)
    return Session(
        done_today=sum(1 for at in finished if at >= day_start),
        goal=goal,
        goal_set_by_project=from_project,
        time_on_task_ms=spent,
        stretch_started_at=stretch_start,
        last_done_at=previous,
        break_due=bool(going_on and stretch_start and previous - stretch_start >= BREAK_AFTER),
    )


def annotator_goals(*, project: Project) -> list[dict]:
    """Every annotator of the project with their own daily goal (None: the project's applies)."""
    own = dict(DailyGoal.objects.filter(project=project).values_list("user__username", "target"))
    names = (
        Membership.objects.filter(project=project, role=Role.ANNOTATOR)
        .order_by("user__username").values_list("user__username", flat=True)
    )
    return [{"username": name, "goal": own.get(name)} for name in names]
