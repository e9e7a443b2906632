"""What every kind of submit shares: lock the annotator's assignment, tell a replayed submit from
a second one, take back a lapsed lease's slot if there is still room, and close the assignment.

Used by comparison judgments, rankings, rewrites and adversarial negatives alike, so the lease
rules cannot drift apart between kinds.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Exists, F, Model, OuterRef
from django.http import Http404

from ..errors import Conflict
from ..models import Assignment, AssignmentStatus, Item, Membership, Project, Role, SpecVersion
from ..rows import from_row
from ..permissions import claim_read_names, claim_reads, work_allowed_check


@dataclass
class Claim:
    assignment: Assignment
    reclaim_slot: bool
    replay: Model | None = None  # the earlier result when this submit was already recorded

    @property
    def by_judge(self) -> bool:
        """An AI judge's submit: it held no slot of the item's k and is not counted on it."""
        return bool(self.assignment.is_judge)


def assignment_claim(
    *, assignment_id: int | None = None, handle: str | None = None, annotator, kind: str,
    replay: Callable[[], Model | None],
) -> Claim:
    """Lock the annotator's own assignment (by id, or by the handle their client holds) for a
    submit of `kind`. Must run in a transaction. Anyone else's assignment is 404.

    `replay` finds the result recorded under this submit's client token: a retried submit returns
    it (Claim.replay) instead of failing."""
    assignment = _claim_row(assignment_id=assignment_id, handle=handle, annotator=annotator)
    if assignment is None:
        raise Http404("No such assignment.")
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


# The claim's one statement, compiled once per shape (by id or by handle) for stand-in values and
# bound to the real ones on each submit, as routing.candidate_sql does: building and compiling the
# queryset with its subqueries was a fifth of a submit's web CPU (bench/annotate_load.py --py-spy).
_STAND_IN_USER, _STAND_IN_ASSIGNMENT, _STAND_IN_HANDLE = -7_301_955_141, -7_301_955_149, "~claim-handle-stand-in~"
_RELATED = (("project", Project), ("project__current_spec", SpecVersion), ("item", Item))
_claim_shapes: dict[tuple, tuple[str, tuple, list[str]]] = {}


def _claim_shape(*, by_handle: bool, annotator_model):
    key = (connection.vendor, by_handle, claim_read_names())
    shape = _claim_shapes.get(key)
    if shape is None:
        someone = annotator_model(pk=_STAND_IN_USER)
        reads = claim_reads(someone)
        which = {"handle": _STAND_IN_HANDLE} if by_handle else {"pk": _STAND_IN_ASSIGNMENT}
        paths = [f.attname for f in Assignment._meta.concrete_fields]
        paths += [f"{prefix}__{f.attname}" for prefix, model in _RELATED for f in model._meta.concrete_fields]
        # Membership, and what the registered gates need (standing, ...), are read by the same
        # statement that takes the lock: one round trip instead of one a check.
        annotations = {"still_member": Exists(Membership.objects.filter(
            project_id=OuterRef("project_id"), user_id=someone.pk, role=Role.ANNOTATOR)),
            "is_judge": Exists(Membership.objects.filter(
                project_id=OuterRef("project_id"), user_id=someone.pk, role=Role.ANNOTATOR, judge=True))}
        annotations.update({f"known_{name}": expression for name, expression in reads.items()})
        query = (Assignment.objects.filter(annotator=someone, **which).select_for_update(of=("self",))
                 .annotate(**annotations).values(*paths, *annotations).query)
        sql, params = query.sql_with_params()
        # The order Django selects a values() query's columns in (ValuesListIterable reads it so).
        names = [*query.extra_select, *query.values_select, *query.annotation_select]
        shape = _claim_shapes[key] = (sql, params, names)
    return shape


def _claim_row(*, assignment_id: int | None, handle: str | None, annotator) -> Assignment | None:
    """The annotator's assignment, locked, with its project, spec and item, `still_member` and
    `claim_known` (the registered reads), or None."""
    # The user model, not type(annotator): a page's request.user is a lazy wrapper.
    sql, params, names = _claim_shape(by_handle=handle is not None, annotator_model=get_user_model())
    swap = {_STAND_IN_USER: annotator.pk, _STAND_IN_ASSIGNMENT: assignment_id, _STAND_IN_HANDLE: handle}
    bound = [swap.get(p, p) if type(p) in (int, str) else p for p in params]
    with connection.cursor() as cursor:
        cursor.execute(sql, bound)
        row = cursor.fetchone()
    if row is None:
        return None
    values = dict(zip(names, row))
    assignment = _model_from(Assignment, values, "")
    project = _model_from(Project, values, "project__")
    spec_id = values["project__current_spec__id"]
    project.current_spec = _model_from(SpecVersion, values, "project__current_spec__") if spec_id is not None else None
    assignment.project = project
    assignment.item = _model_from(Item, values, "item__")
    assignment.item.project = project
    assignment.still_member = values["still_member"]
    assignment.is_judge = values["is_judge"]
    assignment.claim_known = {name[len("known_"):]: value for name, value in values.items() if name.startswith("known_")}
    return assignment


def _model_from(model, values: dict, prefix: str):
    return from_row(model, [values[f"{prefix}{f.attname}"] for f in model._meta.concrete_fields])[0]


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
    statement: the item's UPDATE rides on the assignment's). An AI judge's result is not counted on
    the item: its k is people's (training/services/judges.py)."""
    reclaim = 1 if claim.reclaim_slot else 0
    counted = 0 if claim.by_judge else 1
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"""WITH done AS (UPDATE "{Assignment._meta.db_table}" SET "status" = %s, "finished_at" = %s
                        WHERE "id" = %s RETURNING "item_id")
                    UPDATE "{Item._meta.db_table}" SET "judgment_count" = "judgment_count" + %s,
                        "assigned_count" = "assigned_count" + %s
                    FROM done WHERE "{Item._meta.db_table}"."id" = done.item_id""",
                [AssignmentStatus.SUBMITTED.value, now, claim.assignment.pk, counted, reclaim],
            )
        return
    Assignment.objects.filter(pk=claim.assignment.pk).update(status=AssignmentStatus.SUBMITTED, finished_at=now)
    Item.objects.filter(pk=claim.assignment.item_id).update(
        judgment_count=F("judgment_count") + counted, assigned_count=F("assigned_count") + reclaim)
