"""The annotator's queue: the one entry point for next, submit and skip of live work, which the page
(frontend/views/labelling.py) and the API (annotation/api.py) both call.

The loop is here: sweep expired leases, give back a lease the annotator still holds, else lease a
new item. A higher app plugs into it through `queue_hooks_register` without this module importing
it (calibration registers its standing gate, hidden anchors and their scoring in its AppConfig):

- `admit(project, annotator)` raises NotAllowed (or a subclass) when live work is closed to the
  annotator, and returns a state handed to `pick`;
- `narrow(project, annotator)` is a filter of items this annotator must not be served;
- `pick(project, annotator, now, narrow, state)` may lease an item of its own (a hidden anchor)
  before the live lease is tried, narrowed by the same `narrow`;
- `after_submit(judgment, created, now, defer, known)` runs inside the submit's transaction and
  may return feedback for the annotator; `known` holds what the claim's locking query read for
  the registered claim reads (annotation.permissions.work_gate_register); empty on a replay.

Rankings, rewrites and adversarial negatives are submitted through their own services
(annotation/services/rankings.py, rewrites.py, negatives.py), for the page and the API alike.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from ..errors import Conflict, NotAllowed
from ..models import Assignment, AssignmentStatus, Item, ItemStatus, Judgment, Membership, Project, Role
from ..permissions import work_allowed_check
from .judgments import JudgmentInput, judgment_record
from .routing import assignment_held, assignment_lease, queue_sweep

# Work run after the response has gone out (annotation.after_response.AfterResponse), or None: at once.
Deferred = Callable[[Callable[[], object]], None]


@dataclass(frozen=True)
class QueueHooks:
    admit: Callable[..., object] = lambda **_: None
    narrow: Callable[..., Q] = lambda **_: Q()
    pick: Callable[..., Assignment | None] = lambda **_: None
    after_submit: Callable[..., dict | None] = lambda **_: None


_hooks = QueueHooks()


def queue_hooks_register(hooks: QueueHooks) -> None:
    """Install a higher app's hooks (one set: calibration's)."""
    global _hooks
    _hooks = hooks


@dataclass
class SubmitOutcome:
    judgment: Judgment
    created: bool
    feedback: dict | None = None  # e.g. a hidden anchor's expert answer, when the project shows it


def queue_next(*, project: Project, annotator, now: datetime | None = None) -> Assignment | None:
    """The item this annotator should label now, leased to them; None when nothing is left.

    A lease the annotator already holds comes back (a reload or a second tab must not burn another
    slot). Never an item they judged or skipped, never an item that already has its k judgments or
    leases (annotation/services/routing.py)."""
    hooks = _hooks
    state = hooks.admit(project=project, annotator=annotator)
    now = now or timezone.now()
    queue_sweep(project=project, now=now)
    held = assignment_held(project=project, annotator=annotator, now=now)
    if held is not None:
        return held
    picked = hooks.pick(project=project, annotator=annotator, now=now, narrow=hooks.narrow, state=state)
    if picked is not None:
        return picked
    return assignment_lease(project=project, annotator=annotator, now=now, narrow=hooks.narrow)


def queue_submit(
    *,
    assignment_id: int | None = None,
    handle: str | None = None,
    annotator,
    data: JudgmentInput,
    client_token,
    now: datetime | None = None,
    defer: Deferred | None = None,
) -> SubmitOutcome:
    """Submit a comparison judgment on the annotator's assignment, named by id or by the handle
    their client holds (idempotent by `client_token`), then the hooks' after-submit work in the
    same transaction. Web callers pass `defer` so that work which need not be in the answer runs
    after the response has gone out."""
    with transaction.atomic():
        judgment, created = judgment_record(
            assignment_id=assignment_id, handle=handle, annotator=annotator, data=data, client_token=client_token,
            now=now,
        )
        # What the claim's query read for the hooks (e.g. whether the item is an anchor); a replayed
        # submit did no claim of its own and needs no after-submit work.
        known = judgment.assignment.claim_known if created else {}
        feedback = _hooks.after_submit(judgment=judgment, created=created, now=now, defer=defer, known=known)
    return SubmitOutcome(judgment=judgment, created=created, feedback=feedback)


def judge_submit(*, item: Item, annotator, shown_left: str, data: JudgmentInput, client_token,
                 now: datetime | None = None) -> SubmitOutcome:
    """An AI judge's answer on an item it was handed (training/services/judges.py), through the same claim,
    validation, record and after-submit hooks as a person's submit.

    A judge is not served from the queue and holds no slot of the item's k: its assignment is
    opened here, in the submit's own transaction, with the sides the judge was shown, so a judge
    that fails never leaves a lease behind and people's k is untouched (work.assignment_finish
    does not count its result on the item). Only an account with a judge membership may do this."""
    now = now or timezone.now()
    if shown_left not in ("a", "b"):
        raise ValueError("shown_left is a or b")
    with transaction.atomic():
        if not Membership.objects.filter(project_id=item.project_id, user=annotator, role=Role.ANNOTATOR,
                                         judge=True).exists():
            raise NotAllowed("Only an AI judge's account labels items it was handed.")
        assignment, _ = Assignment.objects.get_or_create(
            annotator=annotator, item=item,
            defaults={"project_id": item.project_id, "status": AssignmentStatus.LEASED, "shown_left": shown_left,
                      "leased_at": now, "lease_expires_at": now})
        if assignment.status != AssignmentStatus.LEASED:
            raise Conflict("This judge already labelled this item.")
        if assignment.shown_left != shown_left:
            raise Conflict("The judge's answer is for another presentation of this item.")
        return queue_submit(assignment_id=assignment.pk, annotator=annotator, data=data, client_token=client_token,
                            now=now)


@transaction.atomic
def queue_skip(*, assignment_id: int, annotator, now: datetime | None = None) -> Assignment:
    """The annotator passes on an item: they never get it again, and its slot goes back."""
    now = now or timezone.now()
    assignment = Assignment.objects.select_for_update().select_related("project").get(pk=assignment_id, annotator=annotator)
    work_allowed_check(user=annotator, project=assignment.project)
    if assignment.status == AssignmentStatus.SUBMITTED:
        raise Conflict("This item is already judged; it cannot be skipped.")
    if assignment.status == AssignmentStatus.SKIPPED:
        return assignment
    was_holding_slot = assignment.status == AssignmentStatus.LEASED
    assignment.status = AssignmentStatus.SKIPPED
    assignment.finished_at = now
    assignment.save(update_fields=["status", "finished_at"])
    if was_holding_slot:
        # A skipped swapped re-ask is over: its shadow item (only ever theirs) is paused, so it no
        # longer counts as waiting.
        Item.objects.filter(pk=assignment.item_id).update(
            assigned_count=F("assigned_count") - 1,
            status=Case(When(reask_of__isnull=False, then=Value(ItemStatus.PAUSED)), default=F("status")))
    return assignment
