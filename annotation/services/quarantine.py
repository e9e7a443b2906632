"""Defence in depth for the labelling queue: an item that fails to render for an annotator is
taken out of every queue with the reason, and the annotator gets the next item instead of an error
page that would come back with the same item after every lease (a 500 loop).

Imports validate text at the boundary (annotation/importing.py); this catches whatever gets past
it (rows written by other paths, data changed under the item, a template bug)."""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TypeVar

from django.db import transaction
from django.db.models import F

from ..models import Assignment, AssignmentStatus, Item, ItemStatus

log = logging.getLogger(__name__)

T = TypeVar("T")
# An annotator's request gives up after this many broken items in a row (each one quarantined):
# enough to step over a bad batch, bounded so one request cannot walk a whole broken import.
MAX_BROKEN_PER_REQUEST = 5


@transaction.atomic
def item_quarantine(*, assignment: Assignment, reason: str) -> None:
    """Take the assignment's item out of every queue with `reason` and forget the lease: the
    annotator never saw it, so it leaves no trace in their work (nor a hint about what it was)."""
    item = Item.objects.select_for_update().get(pk=assignment.item_id)
    Item.objects.filter(pk=item.pk).update(status=ItemStatus.QUARANTINED, quarantine_reason=reason[:2000])
    deleted, _ = Assignment.objects.filter(
        pk=assignment.pk, status=AssignmentStatus.LEASED, judgment__isnull=True
    ).delete()
    if deleted:
        Item.objects.filter(pk=item.pk).update(assigned_count=F("assigned_count") - 1)


def served_renderable(next_assignment: Callable[[], Assignment | None], render: Callable[[Assignment], T]) -> T | None:
    """`render(next_assignment())`, stepping over (and quarantining) items whose rendering raises.
    None when there is nothing left to serve."""
    for _ in range(MAX_BROKEN_PER_REQUEST):
        assignment = next_assignment()
        if assignment is None:
            return None
        try:
            return render(assignment)
        except Exception as exc:  # noqa: BLE001 - whatever broke, the annotator must not be stuck on it
            log.exception("item %s failed to render; quarantined", assignment.item_id)
            item_quarantine(assignment=assignment, reason=f"Failed to render for an annotator: {type(exc).__name__}: {exc}")
    return None


def text_displayable(text: str) -> str:
    """Text that can always be encoded and shown: lone surrogates become U+FFFD, NUL is dropped.
    For the lead's view of items that may be the reason for a quarantine."""
    return _UNSHOWABLE.sub("\ufffd", text).replace("\x00", "")


_UNSHOWABLE = re.compile("[\ud800-\udfff]")
