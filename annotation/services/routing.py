"""Routing: which item an annotator gets next, leases, and expiry of abandoned leases (the queue's
entry points, next, submit and skip, are in services/queue.py).

Concurrency design (PostgreSQL): the candidate item is picked with
`SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent annotators never wait on each other and never
take the same last slot; the row lock plus `assigned_count < target_judgments` (re-checked by
PostgreSQL on the locked row) keeps every item at or under its k. On SQLite (the embedded default)
transactions are IMMEDIATE, which serialises writers and gives the same guarantee.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import BooleanField, Exists, F, OuterRef, Q
from django.db.models.functions import Lower, Trim
from django.db.models.expressions import RawSQL
from django.utils import timezone

from ..errors import Conflict
from ..rows import columns, from_row
from ..models import (
    AnnotatorSkill, Assignment, AssignmentStatus, Item, ItemKind, ItemResponse, ItemStatus, Judgment, Membership,
    Project, Role, assignment_handle_new, domain_in,
)
from ..sides import other_side

_rng = random.SystemRandom()


def leases_expire(*, project: Project | None = None, now: datetime | None = None, limit: int = 1000) -> int:
    """Release leases past their expiry so their slots can be served again. Returns how many."""
    now = now or timezone.now()
    with transaction.atomic():
        stale = Assignment.objects.filter(status=AssignmentStatus.LEASED, lease_expires_at__lt=now)
        if project is not None:
            stale = stale.filter(project=project)
        # SKIP LOCKED: two sweepers never release the same lease twice.
        rows = list(
            stale.select_for_update(skip_locked=True).order_by("id").values_list("id", "item_id")[:limit]
        )
        if not rows:
            return 0
        Assignment.objects.filter(id__in=[r[0] for r in rows]).update(status=AssignmentStatus.EXPIRED)
        per_item: dict[int, int] = {}
        for _, item_id in rows:
            per_item[item_id] = per_item.get(item_id, 0) + 1
        for item_id in sorted(per_item):  # fixed order: no deadlock between sweepers
            Item.objects.filter(pk=item_id).update(assigned_count=F("assigned_count") - per_item[item_id])
    return len(rows)


# Sweeping on every request would cost a transaction per "next"; leases live for minutes, so a
# sweep per project every few seconds per process (plus the beat task) releases them promptly.
SWEEP_INTERVAL_SECONDS = 5.0
_last_sweep: dict[int, datetime] = {}


def queue_sweep(*, project: Project, now: datetime) -> None:
    """Release this project's stale leases, at most once every few seconds per process."""
    last = _last_sweep.get(project.pk)
    if last is not None and timedelta(0) <= now - last < timedelta(seconds=SWEEP_INTERVAL_SECONDS):
        return
    _last_sweep[project.pk] = now
    leases_expire(project=project, now=now)


def assignment_held(*, project: Project, annotator, now: datetime) -> Assignment | None:
    """The unexpired lease this annotator already holds in the project, if any (hand-written: every
    next asks, see annotation/rows.py)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT {columns(Assignment, "a")} FROM "{Assignment._meta.db_table}" a WHERE a."project_id" = %s '
            f'AND a."annotator_id" = %s AND a."status" = %s AND a."lease_expires_at" >= %s '
            f'ORDER BY a."leased_at", a."id" LIMIT 1',
            [project.pk, annotator.pk, AssignmentStatus.LEASED.value, now],
        )
        row = cursor.fetchone()
    return from_row(Assignment, row)[0] if row is not None else None


def assignment_lease(
    *, project: Project, annotator, now: datetime | None = None, held_out: bool = False, narrow: Narrow | None = None,
    kind: str = "", reask: bool = False,
) -> Assignment | None:
    """Lease a new item to this annotator: from the live queue, or with `held_out` from the items
    held out of it (calibration anchors; with `reask` too, this annotator's own swapped re-asks
    instead, Item.reask_of), optionally narrowed by `narrow(project=, annotator=)` (a higher app's
    filter, e.g. calibration's) and to one `kind`. The query, its shape and its row locking are the
    same either way, so they cannot be told apart by how they are served (callers pass the same
    `narrow` for all). A re-ask is shown with the sides its earlier judgment had swapped."""
    now = now or timezone.now()
    held_out = held_out or reask
    for _attempt in range(5):
        try:
            return _lease_new_item(project=project, annotator=annotator, now=now, held_out=held_out, narrow=narrow,
                                   kind=kind, reask=reask)
        except IntegrityError:
            # The same annotator raced themselves (two tabs) for one item: pick again.
            continue
    raise Conflict("Could not reserve an item right now; please try again.")


def leases_release(*, project: Project, annotator, now: datetime | None = None) -> int:
    """Give back every lease this annotator holds in the project (e.g. when they stop being
    allowed live work), so the slots go to others at once. Returns how many."""
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(
            Assignment.objects.filter(project=project, annotator=annotator, status=AssignmentStatus.LEASED)
            .select_for_update()
            .order_by("id")
            .values_list("id", "item_id")
        )
        if not rows:
            return 0
        Assignment.objects.filter(id__in=[r[0] for r in rows]).update(
            status=AssignmentStatus.EXPIRED, lease_expires_at=now
        )
        for _, item_id in sorted(rows, key=lambda r: r[1]):
            Item.objects.filter(pk=item_id).update(assigned_count=F("assigned_count") - 1)
    return len(rows)


def skill_filter(*, project: Project, annotator) -> Q:
    """Rewrite tasks of a skill domain (project.skill_domains), and comparisons still contested
    there (Item.needs_skill, set by dynamic k), only for holders of that skill; every other item
    for anyone. A subquery on the annotator's skills (stored lower-case), not a query of its own:
    the lease stays one round trip."""
    if not project.skill_domains:
        return Q()
    holds_skill = Exists(AnnotatorSkill.objects.filter(
        project_id=project.pk, user_id=annotator.pk, skill=Lower(Trim(OuterRef("prompt__domain")))))
    for_skilled = Q(kind=ItemKind.REWRITE) | Q(needs_skill=True)
    return ~(for_skilled & domain_in("prompt__domain", project.skill_domains) & ~holds_skill)


def blind_filter(*, project: Project, annotator) -> Q:
    """Rubric evaluations only for people who cannot read the runs they come from: a lead or an
    engineer of the project who also annotates could look up on the run page which answer is the
    baseline's and which the checkpoint's. Uncorrelated with the item, so the database evaluates
    the subquery once per lease."""
    reads_runs = Exists(Membership.objects.filter(project_id=project.pk, user_id=annotator.pk,
                                                  role__in=[Role.LEAD, Role.ENGINEER]))
    return ~(Q(kind=ItemKind.RUBRIC) & reads_runs)


def _not_mine_already(annotator) -> RawSQL:
    """True for items this annotator holds no live assignment on.

    Written as a correlated probe on the unique (annotator, item) index. On PostgreSQL `OFFSET 0`
    keeps it a per-row probe: flattened into an anti-join, the planner (with statistics taken
    while the table was small) re-scanned all of the annotator's assignments for every candidate
    item, which made "next" slower with every item the annotator finished (28 ms after 400).
    """
    fence = " OFFSET 0" if connection.vendor == "postgresql" else ""
    table = Assignment._meta.db_table
    return RawSQL(
        f"NOT EXISTS (SELECT 1 FROM {table} mine WHERE mine.annotator_id = %s"
        f" AND mine.item_id = {Item._meta.db_table}.id AND mine.status <> %s{fence})",
        (annotator.pk, AssignmentStatus.EXPIRED.value),
        output_field=BooleanField(),
    )


def _candidate_pool(*, project: Project, annotator, held_out: bool, extra: Q | None, reask: bool = False):
    """Items this annotator could be leased now: active, with room, not theirs already."""
    pool = Item.objects.filter(
        project=project,
        status=ItemStatus.ACTIVE,
        assigned_count__lt=F("target_judgments"),
        in_live_queue=not held_out,
    )
    if held_out:
        # Held out of the live queue are anchors (for anyone) and swapped re-asks (each only for
        # the annotator whose judgment it repeats); a lease asks for one or the other.
        pool = pool.filter(reask_of__annotator_id=annotator.pk) if reask else pool.filter(reask_of__isnull=True)
    if extra is not None:
        pool = pool.filter(extra)
    # Expertise routing applies to every lease, whoever asks (live queue or held out alike).
    pool = pool.filter(skill_filter(project=project, annotator=annotator) & blind_filter(project=project, annotator=annotator))
    return pool.alias(available=_not_mine_already(annotator)).filter(available=True)


def live_item_available(*, project: Project, annotator, narrow: Narrow | None = None, kind: str = "") -> bool:
    """Whether the live queue still has an item this annotator could be leased (narrowed as in
    assignment_lease). Reads without locking; callers use it to decide, not to reserve."""
    sql, params = candidate_sql(project=project, annotator=annotator, held_out=False, narrow=narrow, kind=kind)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS ({sql})", params)
        return bool(cursor.fetchone()[0])


# A filter a higher app adds to every lease: narrow(project=, annotator=) -> Q.
Narrow = Callable[..., Q]
# Stand-ins compiled in place of the real project and annotator (see candidate_sql).
_PROJECT_ID, _ANNOTATOR_ID = -7_301_955_113, -7_301_955_127
_compiled: dict[tuple, tuple[str, tuple]] = {}


def candidate_sql(*, project: Project, annotator, held_out: bool, narrow: Narrow | None = None,
                  kind: str = "", reask: bool = False) -> tuple[str, list]:
    """The SQL of "the first item this annotator could be leased" and its parameters.

    Built by the ORM (_candidate_pool: the one definition), but compiled once per shape and
    process: building and compiling this queryset was a quarter of the web CPU of a next
    (bench/annotate_load.py --py-spy). The shape is everything but the two ids: it is compiled for
    stand-ins whose ids are sentinels, and the sentinels are swapped for the real ids on each call
    (tests/annotation/test_routing_sql.py checks the result equals a fresh compile)."""
    key = (connection.vendor, held_out, kind, tuple(project.skill_domains or ()), narrow, reask)
    shape = _compiled.get(key)
    if shape is None:
        from django.contrib.auth import get_user_model

        stand_in = Project(pk=_PROJECT_ID, skill_domains=project.skill_domains)
        someone = get_user_model()(pk=_ANNOTATOR_ID)
        shape = _compile_candidates(project=stand_in, annotator=someone, held_out=held_out, narrow=narrow, kind=kind,
                                    reask=reask)
        _compiled[key] = shape
    sql, params = shape
    swap = {_PROJECT_ID: project.pk, _ANNOTATOR_ID: annotator.pk}
    return sql, [swap.get(p, p) if type(p) is int else p for p in params]


def _ordered_candidates(*, project, annotator, held_out: bool, narrow: Narrow | None, kind: str,
                        reask: bool = False):
    """_candidate_pool narrowed by the higher app's filter and to one kind, first candidate first."""
    extra = narrow(project=project, annotator=annotator) if narrow is not None else Q()
    if kind:
        extra &= Q(kind=kind)
    pool = _candidate_pool(project=project, annotator=annotator, held_out=held_out, extra=extra, reask=reask)
    # The lead's priority first, then the items where one more judgment tells most (dynamic k's
    # posterior, the routing reward model's margin: Item.informativeness), then the oldest.
    return pool.order_by("-priority", "-informativeness", "id")


def _compile_candidates(*, project, annotator, held_out: bool, narrow: Narrow | None, kind: str,
                        reask: bool = False) -> tuple[str, tuple]:
    pool = _ordered_candidates(project=project, annotator=annotator, held_out=held_out, narrow=narrow, kind=kind,
                               reask=reask)
    return pool.values("id")[:1].query.sql_with_params()


def _lease_new_item(*, project: Project, annotator, now: datetime, held_out: bool, narrow: Narrow | None,
                    kind: str, reask: bool) -> Assignment | None:
    if connection.vendor == "postgresql":
        return _lease_one_statement(project=project, annotator=annotator, now=now, held_out=held_out, narrow=narrow,
                                    kind=kind, reask=reask)
    pool = _ordered_candidates(project=project, annotator=annotator, held_out=held_out, narrow=narrow, kind=kind,
                               reask=reask)
    return _lease_orm(pool=pool, project=project, annotator=annotator, now=now)


def _lease_one_statement(*, project: Project, annotator, now: datetime, held_out: bool, narrow: Narrow | None,
                         kind: str, reask: bool) -> Assignment | None:
    """PostgreSQL: the lease in one statement, one round trip and no explicit transaction (a single
    statement is atomic): pick the first candidate with FOR UPDATE SKIP LOCKED, count the slot on
    the item, insert the assignment (or renew a lapsed one of theirs on this item, keeping the
    presentation and handle they already saw: a draft or an open tab keyed to it must keep meaning
    the same responses), and return it with the texts the payload shows. The candidate filter is
    the ORM's (_candidate_pool, through candidate_sql), so there is one definition of who may get
    what.

    The side shown on the left is drawn at random, except on a swapped re-ask (Item.reask_of),
    which shows the other side than its earlier judgment did: the same CASE runs for every lease.

    A ranking's shown order is shuffled by PostgreSQL's random(): it only spreads position bias
    over annotators, it guards nothing."""
    from ..models import Prompt, Response

    pool_sql, pool_params = candidate_sql(project=project, annotator=annotator, held_out=held_out, narrow=narrow,
                                          kind=kind, reask=reask)
    item_table, assignment_table = Item._meta.db_table, Assignment._meta.db_table
    sql = f"""
        WITH picked AS ({pool_sql} FOR UPDATE OF "{item_table}" SKIP LOCKED),
        item AS (
            UPDATE "{item_table}" SET "assigned_count" = "assigned_count" + 1 FROM picked
            WHERE "{item_table}"."id" = picked."id" RETURNING "{item_table}".*
        ),
        lease AS (
            INSERT INTO "{assignment_table}" ("handle", "project_id", "item_id", "annotator_id", "status",
                "shown_left", "shown_order", "leased_at", "lease_expires_at", "finished_at")
            SELECT %s, %s, item."id", %s, %s, COALESCE((
                    SELECT CASE j."shown_left" WHEN 'a' THEN 'b' WHEN 'b' THEN 'a' END
                    FROM "{Judgment._meta.db_table}" j WHERE j."id" = item."reask_of_id"), %s),
                CASE WHEN item."kind" = %s THEN (
                    SELECT COALESCE(jsonb_agg(r."response_id" ORDER BY random()), '[]'::jsonb)
                    FROM "{ItemResponse._meta.db_table}" r WHERE r."item_id" = item."id")
                ELSE '[]'::jsonb END,
                %s, %s, NULL
            FROM item
            ON CONFLICT ("annotator_id", "item_id") DO UPDATE SET "status" = EXCLUDED."status",
                "leased_at" = EXCLUDED."leased_at", "lease_expires_at" = EXCLUDED."lease_expires_at",
                "finished_at" = NULL
            RETURNING *
        )
        SELECT {columns(Assignment, "lease")}, {columns(Item, "item")}, {columns(Prompt, "p")},
            {columns(Response, "ra")}, {columns(Response, "rb")}
        FROM lease JOIN item ON item."id" = lease."item_id"
        JOIN "{Prompt._meta.db_table}" p ON p."id" = item."prompt_id"
        LEFT JOIN "{Response._meta.db_table}" ra ON ra."id" = item."response_a_id"
        LEFT JOIN "{Response._meta.db_table}" rb ON rb."id" = item."response_b_id"
    """
    params = (*pool_params, assignment_handle_new(), project.pk, annotator.pk, AssignmentStatus.LEASED.value,
              _rng.choice("ab"), ItemKind.RANKING.value, now, now + timedelta(seconds=project.lease_seconds))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    assignment, rest = from_row(Assignment, list(row))
    item, rest = from_row(Item, rest)
    item.prompt, rest = from_row(Prompt, rest)
    response_a, rest = from_row(Response, rest)
    response_b, _ = from_row(Response, rest)
    item.response_a = response_a if item.response_a_id is not None else None
    item.response_b = response_b if item.response_b_id is not None else None
    item.project = project
    assignment.item = item
    return assignment


def _lease_orm(*, pool, project: Project, annotator, now: datetime) -> Assignment | None:
    """The same lease through the ORM, in a transaction: for SQLite (the embedded default), which
    has no data-modifying WITH and serialises writers with IMMEDIATE transactions instead."""
    with transaction.atomic():
        item = (
            pool
            # The texts come along so the caller needs no second query to show the item.
            .select_related("prompt", "response_a", "response_b", "reask_of")
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if item is None:
            return None
        Item.objects.filter(pk=item.pk).update(assigned_count=F("assigned_count") + 1)
        # A lapsed lease of theirs on this item is renewed with the presentation they already saw.
        earlier = (
            Assignment.objects.filter(annotator=annotator, item_id=item.pk)
            .values_list("shown_left", "shown_order", "handle")
            .first()
        )
        handle = None
        if earlier is not None:
            shown_left, shown_order, handle = earlier
        else:
            shown_left, shown_order = _rng.choice("ab"), []
            if item.reask_of_id is not None:  # read by the pick's own join: no query more for a re-ask
                shown_left = other_side(item.reask_of.shown_left)
            if item.kind == ItemKind.RANKING:
                # A fresh random order per assignment: position bias averages out over annotators.
                shown_order = list(ItemResponse.objects.filter(item=item).values_list("response_id", flat=True))
                _rng.shuffle(shown_order)
        assignment = Assignment(
            project=project,
            item_id=item.pk,
            annotator=annotator,
            status=AssignmentStatus.LEASED,
            shown_left=shown_left,
            shown_order=shown_order,
            leased_at=now,
            lease_expires_at=now + timedelta(seconds=project.lease_seconds),
        )
        # One INSERT ... ON CONFLICT: a lease of theirs on this item that expired earlier is
        # renewed in place (the candidate query only lets expired rows through).
        Assignment.objects.bulk_create(
            [assignment],
            update_conflicts=True,
            unique_fields=["annotator", "item"],
            update_fields=["status", "shown_left", "shown_order", "leased_at", "lease_expires_at", "finished_at"],
        )
        if assignment.pk is None:  # backends without RETURNING on upsert
            assignment = Assignment.objects.get(item_id=item.pk, annotator=annotator)
        elif handle is not None:
            # The upsert kept the row's handle (not among update_fields), not the fresh default.
            assignment.handle = handle
        assignment.item = item
        return assignment


def annotator_progress(*, project: Project, annotator) -> dict[str, int]:
    """How many items this annotator has judged here.

    Deliberately no "N left": that count moves differently for a hidden anchor (not in the live
    queue) than for a live item, so showing it would tell an annotator which item was gold.
    Leads see the queue's size on their pages.
    """
    done = Assignment.objects.filter(
        project=project, annotator=annotator, status=AssignmentStatus.SUBMITTED
    ).count()
    return {"done": done}

