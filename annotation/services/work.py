"""What every kind of submit shares: lock the annotator's assignment, tell a replayed submit from
a second one, take back a lapsed lease's slot if there is still room, and close the assignment.

Used by comparison judgments, rankings, rewrites and adversarial negatives alike, so the lease
rules cannot drift apart between kinds.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Exists, F, Model, OuterRef
from django.http import Http404

from ..errors import Conflict
from ..models import Assignment, AssignmentStatus, Item, Membership, Role
from ..permissions import claim_reads, work_allowed_check


@dataclass
class Claim:
    assignment: Assignment
    reclaim_slot: bool
    replay: Model | None = None  # the earlier result when this submit was already recorded


def assignment_claim(
    *, assignment_id: int | None = None, handle: str | None = None, annotator, kind: str,
    replay: Callable[[], Model | None],
) -> Claim:
    """Lock the annotator's own assignment (by id, or by the handle their client holds) for a
    submit of `kind`. Must run in a transaction. Anyone else's assignment is 404.

    `replay` finds the result recorded under this submit's client token: a retried submit returns
    it (Claim.replay) instead of failing."""
    which = {"pk": assignment_id} if handle is None else {"handle": handle}
    reads = claim_reads(annotator)
    mine = Assignment.objects.filter(annotator=annotator, **which)
    assignment = (
        mine.select_for_update(of=("self",))
        .select_related("project", "project__current_spec", "item")
        # Membership, and what the registered gates need (standing, ...), are read by the same
        # statement that takes the lock: one round trip instead of one a check.
        .annotate(still_member=Exists(Membership.objects.filter(
            project_id=OuterRef("project_id"), user_id=annotator.pk, role=Role.ANNOTATOR)),
            **{f"known_{name}": expression for name, expression in reads.items()})
        .first()
    )
    if assignment is None:
        raise Http404("No such assignment.")
    assignment.claim_known = {name: getattr(assignment, f"known_{name}") for name in reads}
    work_allowed_check(user=annotator, project=assignment.project, member=assignment.still_member,
                       known=assignment.claim_known)
    if assignment.item.kind != kind:
        raise Conflict(f"This item is a {assignment.item.get_kind_display().lower()} task, not a {kind} task.")
    if assignment.status == AssignmentStatus.SUBMITTED:
        # Under the assignment's lock, so a concurrent replay of the same submit waits for the
        # first to commit and then finds its result here.
        existing = replay()
        if existing is not None and existing.assignment_id == assignment.pk:
            return Claim(assignment=assignment, reclaim_slot=False, replay=existing)
        if kind == "comparison":
            raise Conflict("You already judged this item; edit your judgment instead.")
        raise Conflict("You already submitted this item.")
    if assignment.status == AssignmentStatus.SKIPPED:
        raise Conflict("You skipped this item, so it cannot be submitted.")
    return Claim(assignment=assignment, reclaim_slot=assignment.status == AssignmentStatus.EXPIRED)


def slot_check(claim: Claim) -> None:
    """A lapsed lease may still be submitted while the item has room; otherwise say so (the
    caller's form keeps the text)."""
    if not claim.reclaim_slot:
        return
    item = Item.objects.select_for_update().get(pk=claim.assignment.item_id)
    if item.assigned_count >= item.target_judgments:
        raise Conflict(
            "Your reservation of this item expired and it has since been given to "
            "other annotators. Your text is kept in this form; copy it if you need it."
        )


def assignment_finish(*, claim: Claim, now: datetime) -> None:
    """Mark the assignment submitted and count the result on its item (on PostgreSQL in one
    statement: the item's UPDATE rides on the assignment's)."""
    reclaim = 1 if claim.reclaim_slot else 0
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"""WITH done AS (UPDATE "{Assignment._meta.db_table}" SET "status" = %s, "finished_at" = %s
                        WHERE "id" = %s RETURNING "item_id")
                    UPDATE "{Item._meta.db_table}" SET "judgment_count" = "judgment_count" + 1,
                        "assigned_count" = "assigned_count" + %s
                    FROM done WHERE "{Item._meta.db_table}"."id" = done.item_id""",
                [AssignmentStatus.SUBMITTED.value, now, claim.assignment.pk, reclaim],
            )
        return
    Assignment.objects.filter(pk=claim.assignment.pk).update(status=AssignmentStatus.SUBMITTED, finished_at=now)
    Item.objects.filter(pk=claim.assignment.item_id).update(
        judgment_count=F("judgment_count") + 1, assigned_count=F("assigned_count") + reclaim)
