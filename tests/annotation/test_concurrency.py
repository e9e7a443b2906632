"""Routing and submit under real concurrency on PostgreSQL: many threads, each with its own
database connection, asking for items and submitting at once."""
from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
from django.db import connection, connections

from annotation.models import Assignment, AssignmentStatus, Item, Judgment
from annotation.services.judgments import judgment_submit
from annotation.services.queue import queue_next
from tests.factories import ItemFactory, ProjectFactory, good_input, member

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("concurrency")]


def run_threads(n: int, target) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def body(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return errors


def test_many_annotators_at_once_never_overfill_duplicate_or_lose_a_submit():
    assert connection.vendor == "postgresql", "this test is about PostgreSQL row locking"
    project = ProjectFactory(overlap=3)
    ItemFactory.create_batch(40, project=project)
    annotators = [member(project) for _ in range(16)]
    accepted: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        me = annotators[i]
        while True:
            assignment = queue_next(project=project, annotator=me)
            if assignment is None:
                return
            judgment, created = judgment_submit(
                assignment_id=assignment.pk, annotator=me, data=good_input(), client_token=uuid.uuid4()
            )
            assert created
            with lock:
                accepted.append(judgment.pk)

    errors = run_threads(len(annotators), work)
    assert errors == []
    stored = set(Judgment.objects.filter(project=project).values_list("id", flat=True))
    assert stored == set(accepted), "every accepted submit is stored, nothing else is"
    per_item = Counter(Judgment.objects.filter(project=project).values_list("item_id", flat=True))
    assert max(per_item.values()) <= 3
    assert sum(per_item.values()) == 40 * 3, "all work got done"
    pairs = Counter(Judgment.objects.filter(project=project).values_list("item_id", "annotator_id"))
    assert max(pairs.values()) == 1, "no annotator judged an item twice"
    for item in Item.objects.filter(project=project):
        assert item.judgment_count == item.assigned_count == per_item[item.pk]
    assert not Assignment.objects.filter(project=project, status=AssignmentStatus.LEASED).exists()


def test_concurrent_replays_of_one_submit_create_one_judgment():
    project = ProjectFactory()
    ItemFactory(project=project)
    me = member(project)
    assignment = queue_next(project=project, annotator=me)
    token = uuid.uuid4()
    results: list[tuple[int, bool]] = []

    def replay(_i: int) -> None:
        judgment, created = judgment_submit(
            assignment_id=assignment.pk, annotator=me, data=good_input(), client_token=token
        )
        results.append((judgment.pk, created))

    assert run_threads(8, replay) == []
    assert len({pk for pk, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Judgment.objects.filter(annotator=me).count() == 1
    assert Item.objects.get(project=project).judgment_count == 1


def test_both_bad_answers_on_one_item_at_once_make_one_bad_case_per_response():
    """Eight annotators answer "both bad" on the same item at the same moment: each response
    gets one bad case and one rewrite task, and every report is counted (reports of a response are
    serialised on its row; two responses are locked in id order, so no deadlock)."""
    from annotation.models import BadCase, ItemKind
    from annotation.services.queue import queue_submit

    project = ProjectFactory(overlap=8)
    item = ItemFactory(project=project)
    annotators = [member(project) for _ in range(8)]
    leases = [queue_next(project=project, annotator=a) for a in annotators]
    assert {lease.item_id for lease in leases} == {item.pk}

    def work(i: int) -> None:
        outcome = queue_submit(assignment_id=leases[i].pk, annotator=annotators[i], client_token=uuid.uuid4(),
                               data=good_input(choice="both_bad", strength=""))
        assert outcome.created

    assert run_threads(8, work) == []
    cases = BadCase.objects.filter(project=project).order_by("response_id")
    assert [c.response_id for c in cases] == sorted([item.response_a_id, item.response_b_id])
    assert [c.reports for c in cases] == [8, 8] and all(c.sources == ["both_bad"] for c in cases)
    rewrites = Item.objects.filter(project=project, kind=ItemKind.REWRITE)
    assert sorted(rewrites.values_list("response_a_id", flat=True)) == sorted([item.response_a_id, item.response_b_id])
    assert Judgment.objects.filter(item=item).count() == 8
