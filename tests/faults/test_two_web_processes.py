"""Two gunicorn instances on one database, as replicas behind a load balancer would be: the web
processes hold no state of their own that routing depends on (leases, k, the per-process sweep
timer, idempotent submits, token revocation and standing changes all live in PostgreSQL).

Each annotator asks one instance for work and answers through the other, then replays the same
answer on the first; some annotators walk away from leases taken on both instances after both
have swept once, so their slots come back only through a later sweep, on whichever instance runs
it first. At the end every routing invariant is checked in the database: every item has exactly k
judgments, every item's counter matches its rows, every walked-away lease was released once, every
replay got the first answer back."""
from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, Item, Judgment, Role
from annotation.services.tokens import token_issue
from tests.factories import ItemFactory, ProjectFactory, member

from .services import base_env, database_url, http, submit_url, wait_until, web_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]

ITEMS = 24
OVERLAP = 3
WORKERS = 10
WALK_AWAYS = 4
LEASE_SECONDS = 4


def _answer() -> dict:
    return {"choice": "left", "strength": "clear", "rationale": "Left answers the question asked.",
            "time_spent_ms": 2500, "client_token": str(uuid.uuid4())}


class Pool:
    """Annotator threads, each crossing instances on every label: next on `asks`, submit on the
    other, the same submit replayed on `asks`."""

    def __init__(self, bases: list[str], slug: str, target: int):
        self.bases, self.slug, self.target = bases, slug, target
        self.acknowledged: list[int] = []
        self.replays_differing: list[str] = []
        self.unexpected: list[str] = []
        self.served = Counter()  # (instance, what) -> answers
        self.lock = threading.Lock()
        self.deadline = time.monotonic() + 90

    def work(self, token: str, asks: int) -> None:
        ask, answer_on = self.bases[asks], self.bases[1 - asks]
        try:
            while time.monotonic() < self.deadline:
                leased = http("POST", f"{ask}/api/projects/{self.slug}/next/", token=token)
                if leased.status == 204:
                    with self.lock:
                        if len(self.acknowledged) >= self.target:
                            return
                    time.sleep(0.3)  # slots held by walked-away leases come back once a sweep runs
                    continue
                if leased.status != 200:
                    self.unexpected.append(f"next: {leased.status} {leased.body[:200]!r}")
                    return
                body = _answer()
                first = http("POST", submit_url(answer_on, leased.json()), body=body, token=token)
                replay = http("POST", submit_url(ask, leased.json()), body=body, token=token)
                if first.status != 201 or replay.status != 200:
                    self.unexpected.append(f"submit {first.status} / replay {replay.status}: {first.body[:200]!r}")
                    return
                with self.lock:
                    self.served[(asks, "next")] += 1
                    self.served[(1 - asks, "submit")] += 1
                    self.acknowledged.append(first.json()["id"])
                    if replay.json()["id"] != first.json()["id"]:
                        self.replays_differing.append(f"{first.json()['id']} != {replay.json()['id']}")
            self.unexpected.append("deadline passed")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.unexpected.append(repr(exc))


def test_two_gunicorn_instances_on_one_database_keep_every_routing_invariant(tmp_path):
    project = ProjectFactory(overlap=OVERLAP, lease_seconds=LEASE_SECONDS)
    ItemFactory.create_batch(ITEMS, project=project)
    workers = [token_issue(user=member(project))[1] for _ in range(WORKERS)]
    walked_away = [member(project) for _ in range(WALK_AWAYS)]
    walk_aways = [token_issue(user=user)[1] for user in walked_away]
    revoked_token, revoked_secret = token_issue(user=member(project, Role.LEAD))
    excluded_user = member(project)
    excluded_secret = token_issue(user=excluded_user)[1]
    lead_secret = token_issue(user=member(project, Role.LEAD))[1]

    env = base_env(DJANGO_SETTINGS_MODULE="tests.faults.live_settings",
                   DATABASE_URL=database_url(connection.settings_dict))
    with web_server(env, tmp_path / "a.log", threads=8) as a, web_server(env, tmp_path / "b.log", threads=8) as b:
        bases = [a, b]
        next_on = lambda base, token: http("POST", f"{base}/api/projects/{project.slug}/next/", token=token)  # noqa: E731

        # Walk-aways take a lease each, on alternating instances, and never answer. This also starts
        # both instances' sweep timers, so the expired leases come back only through a later sweep.
        for n, token in enumerate(walk_aways):
            assert next_on(bases[n % 2], token).status == 200

        # A change made through one instance takes effect on the other at once: no per-process cache
        # of tokens or standings.
        project_on = lambda base: http("GET", f"{base}/api/projects/{project.slug}/", token=revoked_secret)  # noqa: E731
        assert project_on(b).status == 200
        assert http("DELETE", f"{a}/api/tokens/{revoked_token.pk}/", token=revoked_secret).status == 200
        assert project_on(b).status == 401
        assert next_on(a, excluded_secret).status == 200
        assert next_on(b, excluded_secret).status == 200  # b has served them too: nothing to go stale
        override = http("POST", f"{a}/api/projects/{project.slug}/standings/{excluded_user.username}/",
                        token=lead_secret, body={"state": "excluded", "reason": "two-instance test"})
        assert override.status == 200, override.body
        refused = next_on(b, excluded_secret)
        assert refused.status == 403, refused.body

        held = Assignment.objects.filter(project=project, status=AssignmentStatus.LEASED)
        expiry = max(held.values_list("lease_expires_at", flat=True))
        wait_until(lambda: timezone.now() > expiry + timedelta(milliseconds=200), timeout=LEASE_SECONDS + 5,
                   what="the walked-away leases to expire")

        pool = Pool(bases, project.slug, ITEMS * OVERLAP)
        threads = [threading.Thread(target=pool.work, args=(token, n % 2), daemon=True)
                   for n, token in enumerate(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    assert pool.unexpected == [] and not any(t.is_alive() for t in threads), pool.unexpected[:5]
    assert pool.replays_differing == [], "a replay on the other instance gets the first answer back"
    assert all(pool.served[(i, what)] > 0 for i in (0, 1) for what in ("next", "submit")), pool.served

    judgments = Judgment.objects.filter(assignment__project=project)
    assert sorted(pool.acknowledged) == sorted(judgments.values_list("id", flat=True))
    assert len(set(pool.acknowledged)) == ITEMS * OVERLAP, "all work done, nothing stored twice"
    per_item = Counter(judgments.values_list("assignment__item_id", flat=True))
    assert set(per_item.values()) == {OVERLAP} and len(per_item) == ITEMS, "every item has exactly k judgments"

    # Every walked-away lease was released exactly once (two sweepers, SKIP LOCKED), and every
    # item's counter equals its submitted and still-open leases.
    left = Assignment.objects.filter(project=project, annotator__in=walked_away)
    assert sorted(left.values_list("status", flat=True)) == [AssignmentStatus.EXPIRED] * WALK_AWAYS
    now = timezone.now()
    for item in Item.objects.filter(project=project).annotate(
            submitted=Count("assignments", filter=Q(assignments__status=AssignmentStatus.SUBMITTED)),
            open=Count("assignments", filter=Q(assignments__status=AssignmentStatus.LEASED,
                                                assignments__lease_expires_at__gte=now))):
        assert item.assigned_count == item.submitted + item.open, (item.pk, item.assigned_count, item.submitted)
