"""Store a simulated annotator pool (calibration.generators.simulation) as real rows: users, items, anchors,
assignments and judgments. For the analytics tests, bench/analytics.py and the demo project, so the
dashboard has a pool whose biases are known. Never used on real projects' data paths."""
from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from annotation.models import (
    Assignment, AssignmentStatus, assignment_handle_new, Item, ItemStatus, Judgment, Membership, Project, Prompt, Response, Role,
)

from . import simulation as sim_mod
from ..models import Anchor, Standing, StandingState

_CHOICE = ("a", "b", "tie", "both_bad")


def simulation_store(*, project: Project, sim: sim_mod.Simulation, prefix: str, start: dt.datetime | None = None,
                     batch_size: int = 5000, progress=None) -> dict:
    """Write the simulation into `project`; returns {"users": [...], "items": [pk...]}."""
    report = progress or (lambda done, total: None)
    start = start or (timezone.now() - dt.timedelta(days=int(sim.day.max()) + 1 if sim.day.size else 1))
    User = get_user_model()
    with transaction.atomic():
        users = [User(username=f"{prefix}-{kind}-{i}") for i, kind in enumerate(sim.kinds)]
        for u in users:
            u.set_unusable_password()
        users = User.objects.bulk_create(users)
        Membership.objects.bulk_create([Membership(project=project, user=u, role=Role.ANNOTATOR) for u in users])
        now = timezone.now()
        Standing.objects.bulk_create([
            Standing(project=project, annotator=u, state=StandingState.ACTIVE, since=start, reason="simulated")
            for u in users
        ])
        n_items = len(sim.prompts)
        prompts = Prompt.objects.bulk_create([
            Prompt(project=project, messages=[{"role": "user", "content": sim.prompts[i]}],
                   domain=sim_mod.DOMAINS[sim.domain[i]], difficulty=sim_mod.DIFFICULTIES[sim.difficulty[i]],
                   source="simulation")
            for i in range(n_items)
        ], batch_size=batch_size)
        responses = Response.objects.bulk_create([
            Response(prompt=prompts[i], text=text, model_name=side)
            for i in range(n_items) for side, text in (("a", sim.text_a[i]), ("b", sim.text_b[i]))
        ], batch_size=batch_size)
        per_item = np.bincount(sim.item, minlength=n_items)
        items = Item.objects.bulk_create([
            Item(project=project, prompt=prompts[i], response_a=responses[2 * i], response_b=responses[2 * i + 1],
                 status=ItemStatus.ACTIVE, target_judgments=Item.UNLIMITED_TARGET if sim.is_anchor[i] else int(per_item[i]),
                 assigned_count=int(per_item[i]), judgment_count=int(per_item[i]),
                 in_live_queue=not bool(sim.is_anchor[i]))
            for i in range(n_items)
        ], batch_size=batch_size)
        Anchor.objects.bulk_create([
            Anchor(project=project, item=items[i], expert_choice=_CHOICE[sim.truth[i]], expert_strength="clear",
                   explanation="Simulated: the true answer.", clear_cut=True)
            for i in np.flatnonzero(sim.is_anchor)
        ], batch_size=batch_size)

        if connection.vendor == "postgresql":
            _judgments_copy(project, sim, users, items, start, now, report)
        else:
            _judgments_bulk(project, sim, users, items, start, now, batch_size, report)
    return {"users": users, "items": [it.pk for it in items]}


def _judgments_bulk(project, sim, users, items, start, now, batch_size, report) -> None:
    total = sim.item.size
    for lo in range(0, total, batch_size):
        hi = min(lo + batch_size, total)
        rows = range(lo, hi)
        assignments = Assignment.objects.bulk_create([
            Assignment(project=project, item=items[sim.item[j]], annotator=users[sim.annotator[j]],
                       status=AssignmentStatus.SUBMITTED, shown_left="a" if sim.a_left[j] else "b",
                       leased_at=now, lease_expires_at=now, finished_at=now)
            for j in rows
        ])
        judgments = Judgment.objects.bulk_create([
            Judgment(assignment=assignments[j - lo], project=project, item=items[sim.item[j]],
                     annotator=users[sim.annotator[j]], choice=_CHOICE[sim.choice[j]],
                     strength=sim_mod.STRENGTHS[sim.strength[j]] if sim.strength[j] >= 0 else "",
                     rationale="Simulated judgment.", time_spent_ms=int(sim.time_ms[j]),
                     shown_left="a" if sim.a_left[j] else "b", client_token=uuid.uuid4())
            for j in rows
        ])
        # created_at is auto_now_add: set the simulated day afterwards, one UPDATE per day.
        days = sim.day[lo:hi]
        for day in np.unique(days):
            ids = [judgments[k].pk for k in np.flatnonzero(days == day)]
            Judgment.objects.filter(pk__in=ids).update(created_at=start + dt.timedelta(days=int(day), hours=12))
        report(hi, total)


def _judgments_copy(project, sim, users, items, start, now, report) -> None:
    """PostgreSQL COPY: about 50 times faster than bulk_create, which matters for the million
    judgments of bench/analytics.py. Assignment ids come back in COPY order: the table's sequence
    hands them out row by row, and this runs inside the caller's transaction."""
    total = sim.item.size
    item_pk = np.array([it.pk for it in items])[sim.item]
    user_pk = np.array([u.pk for u in users])[sim.annotator]
    side = np.where(sim.a_left, "a", "b")
    a_table, j_table = Assignment._meta.db_table, Judgment._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{a_table}"')
        before = cursor.fetchone()[0]
        cols = ("handle, project_id, item_id, annotator_id, status, shown_left, shown_order, leased_at, "
                "lease_expires_at, finished_at")
        with cursor.connection.cursor().copy(f'COPY "{a_table}" ({cols}) FROM STDIN') as copy:
            for j in range(total):
                copy.write_row((assignment_handle_new(), project.pk, int(item_pk[j]), int(user_pk[j]),
                                AssignmentStatus.SUBMITTED, side[j], "[]", now, now, now))
                if j % 100_000 == 0:
                    report(j // 2, total)
        cursor.execute(f'SELECT id FROM "{a_table}" WHERE project_id = %s AND id > %s ORDER BY id', [project.pk, before])
        assignment_ids = [r[0] for r in cursor.fetchall()]
        assert len(assignment_ids) == total, "another writer interleaved assignments"
        cols = ("assignment_id, project_id, item_id, annotator_id, choice, strength, dimension_choices, rationale, "
                "time_spent_ms, shown_left, client_token, revision, by_judge, created_at, updated_at")
        days = [start + dt.timedelta(days=int(d), hours=12) for d in range(int(sim.day.max()) + 1)] if total else []
        with cursor.connection.cursor().copy(f'COPY "{j_table}" ({cols}) FROM STDIN') as copy:
            for j in range(total):
                when = days[sim.day[j]]
                copy.write_row((
                    assignment_ids[j], project.pk, int(item_pk[j]), int(user_pk[j]), _CHOICE[sim.choice[j]],
                    sim_mod.STRENGTHS[sim.strength[j]] if sim.strength[j] >= 0 else "", "{}", "Simulated judgment.",
                    int(sim.time_ms[j]), side[j], uuid.uuid4(), 1, False, when, when,
                ))
                if j % 100_000 == 0:
                    report(total // 2 + j // 2, total)
    report(total, total)


# How often each simulated kind answers a swapped re-ask differently from the first time (a noisy
# or hurried rater flips often; a rater following a cue follows it again, so flips less).
REASK_FLIP_RATE = {"expert": 0.06, "noisy": 0.32, "fast": 0.38}
REASK_FLIP_RATE_DEFAULT = 0.12


def simulation_reasks_store(*, project: Project, sim: sim_mod.Simulation, users: list, per_annotator: int = 48,
                            seed: int = 0) -> int:
    """Swapped re-asks for a stored simulated pool (calibration/services/reasks.py's rows): for each
    annotator, `per_annotator` of their live judgments asked again with the other side on the left,
    answered differently with their kind's REASK_FLIP_RATE. Returns how many were made."""
    rng = np.random.default_rng(seed)
    made = 0
    with transaction.atomic():
        for index, user in enumerate(users):
            mine = list(Judgment.objects.filter(project=project, annotator=user, item__in_live_queue=True,
                                                reask_of__isnull=True).select_related("item").order_by("id"))
            if not mine:
                continue
            chosen = rng.choice(len(mine), size=min(per_annotator, len(mine)), replace=False)
            flip_rate = REASK_FLIP_RATE.get(sim.kinds[index], REASK_FLIP_RATE_DEFAULT)
            now = timezone.now()
            for k in sorted(chosen):
                first = mine[k]
                shadow = Item.objects.create(
                    project=project, prompt_id=first.item.prompt_id, response_a_id=first.item.response_a_id,
                    response_b_id=first.item.response_b_id, target_judgments=1, assigned_count=1, judgment_count=1,
                    in_live_queue=False, reask_of=first)
                shown_left = "b" if first.shown_left == "a" else "a"
                assignment = Assignment.objects.create(
                    project=project, item=shadow, annotator=user, status=AssignmentStatus.SUBMITTED,
                    shown_left=shown_left, leased_at=now, lease_expires_at=now, finished_at=now)
                choice = first.choice
                if rng.random() < flip_rate:
                    choice = rng.choice([c for c in _CHOICE if c != first.choice])
                Judgment.objects.create(
                    assignment=assignment, project=project, item=shadow, annotator=user, choice=str(choice),
                    strength="clear" if choice in ("a", "b") else "", rationale="Simulated re-ask.",
                    time_spent_ms=first.time_spent_ms, shown_left=shown_left, reask_of=first)
                made += 1
    return made
