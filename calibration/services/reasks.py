"""Swapped re-asks: an annotator is asked again, later, a comparison they already judged, with the
sides swapped, to measure how consistent they are with themselves.

How it works:
- After a live comparison is submitted, with chance r / (1 - r) (r: CalibrationPolicy.reask_rate,
  so that about r of everything served is a re-ask), one of the annotator's earlier judgments is
  drawn at random, never one of their last REASK_MIN_GAP, and a shadow item is made for it:
  the same prompt and responses, held out of the live queue, target 1, Item.reask_of pointing at
  the earlier judgment. This runs after the response has gone out (like hidden-anchor scoring).
- The queue's pick (calibration/services/queue.py) serves one of the annotator's pending re-asks
  with chance REASK_SERVE_CHANCE_PER_RATE x r on a request that drew no anchor, only while live
  comparisons are left for them (as anchors). It goes through the same lease statement as any
  item (annotation/services/routing.py), with the other side on the left than the first time; the
  payload, the handle and the submit path are those of new work.
- Its answer is a Judgment with reask_of set. Every data reader leaves those out: sets, agreement,
  bias, discovery, counts of judgments and items. The earlier item's k is never touched. The
  annotator's own "done" count and My work include it, as they would new work.

A flip is a re-ask whose canonical choice (a, b, tie, both bad) differs from the earlier
judgment's, both as first submitted (JudgmentRevision 1 when either was edited since): editing
either afterwards cannot make a flip disappear. What no presentation can prevent: an annotator
who recognises a pair can look up their earlier answer in My work and copy it. The flip rate's 95% interval is Wilson's; the dashboard shows it
once an annotator has REASK_MIN_FOR_RATE re-asks. In the bias-aware aggregation the flip rate
sets where the annotator's reliability is pulled (rewards/bias_aware.py, consistency_prior).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from annotation.models import Item, ItemKind, ItemStatus, Judgment, JudgmentRevision, Project

from ..stats import wilson_interval

REASK_MIN_GAP = 10  # an annotator's last 10 judgments are never the one asked again
REASK_MIN_FOR_RATE = 40  # re-asks before a flip rate is shown
REASK_SERVE_CHANCE_PER_RATE = 5.0  # chance per request, as a multiple of the rate (capped at 0.5)

_rng = random.SystemRandom()


def reask_create_chance(rate: float) -> float:
    """Chance, per live comparison submitted, that a re-ask is planned: r / (1 - r) makes re-asks
    about r of all comparisons served."""
    return rate / (1.0 - rate) if 0.0 < rate < 1.0 else 0.0


def reask_serve_chance(rate: float) -> float:
    return min(0.5, REASK_SERVE_CHANCE_PER_RATE * rate) if rate > 0 else 0.0


def reask_draw(*, judgment: Judgment, rate: float) -> bool:
    """Whether this just-submitted judgment should plan a re-ask (live comparisons only)."""
    item = judgment.assignment.item
    if judgment.reask_of_id is not None or not item.in_live_queue or item.kind != ItemKind.COMPARISON:
        return False
    return _rng.random() < reask_create_chance(rate)


def reask_plan(*, project_id: int, annotator_id: int) -> Item | None:
    """Make a pending re-ask for one of the annotator's earlier judgments (drawn at random, not one
    of their last REASK_MIN_GAP, not one already re-asked, on an item still active). None when no
    judgment qualifies."""
    mine = Judgment.objects.filter(project_id=project_id, annotator_id=annotator_id, reask_of__isnull=True)
    recent = list(mine.order_by("-id").values_list("id", flat=True)[:REASK_MIN_GAP])
    if len(recent) < REASK_MIN_GAP:
        return None
    earlier = (
        mine.filter(id__lt=min(recent), item__in_live_queue=True, item__kind=ItemKind.COMPARISON,
                    item__status=ItemStatus.ACTIVE, item__anchor__isnull=True, shown_left__in=("a", "b"),
                    reask_item__isnull=True)
        .select_related("item")
        .order_by("?")
        .first()
    )
    if earlier is None:
        return None
    source = earlier.item
    try:
        with transaction.atomic():
            return Item.objects.create(
                project_id=project_id, kind=ItemKind.COMPARISON, prompt_id=source.prompt_id,
                response_a_id=source.response_a_id, response_b_id=source.response_b_id,
                target_judgments=1, in_live_queue=False, reask_of=earlier,
            )
    except IntegrityError:  # planned by a concurrent submit already (Item.reask_of is one-to-one)
        return None


@dataclass(frozen=True)
class Consistency:
    """One annotator's swapped re-asks."""

    annotator_id: int
    reasks: int
    flips: int
    pending: int

    @property
    def enough(self) -> bool:
        return self.reasks >= REASK_MIN_FOR_RATE

    @property
    def flip_rate(self) -> float | None:
        return self.flips / self.reasks if self.reasks else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.flips, self.reasks) if self.reasks else None

    def as_dict(self) -> dict:
        low, high = self.interval or (None, None)
        return {"annotator_id": self.annotator_id, "reasks": self.reasks, "flips": self.flips,
                "pending": self.pending, "flip_rate": self.flip_rate, "ci_low": low, "ci_high": high,
                "shown": self.enough}


def self_consistency(*, project: Project) -> dict[int, Consistency]:
    """Per annotator with any re-ask answered or pending: re-asks answered, flips and pending."""
    answered: dict[int, list[int]] = {}
    rows = list(Judgment.objects.filter(project=project, reask_of__isnull=False).values_list(
        "annotator_id", "id", "choice", "reask_of_id", "reask_of__choice"))
    # The first submitted answer of each (an edit keeps the earlier state as revision 1).
    first = dict(JudgmentRevision.objects.filter(
        revision=1, judgment_id__in=[r[1] for r in rows] + [r[3] for r in rows]).values_list("judgment_id", "choice"))
    for annotator_id, again_id, again, earlier_id, earlier in rows:
        tally = answered.setdefault(annotator_id, [0, 0])
        tally[0] += 1
        tally[1] += int(first.get(again_id, again) != first.get(earlier_id, earlier))
    pending: dict[int, int] = {}
    open_items = Item.objects.filter(project=project, reask_of__isnull=False, judgment_count=0,
                                     status=ItemStatus.ACTIVE).values_list("reask_of__annotator_id", flat=True)
    for annotator_id in open_items:
        pending[annotator_id] = pending.get(annotator_id, 0) + 1
    return {
        a: Consistency(annotator_id=a, reasks=answered.get(a, [0, 0])[0], flips=answered.get(a, [0, 0])[1],
                       pending=pending.get(a, 0))
        for a in sorted(set(answered) | set(pending))
    }
