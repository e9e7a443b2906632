"""Routing: which item an annotator gets, leases, skips, randomised sides."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, Item
from annotation.services.judgments import judgment_submit
from annotation.services.routing import annotator_progress, leases_expire
from annotation.services.queue import queue_next, queue_skip
from tests.factories import ItemFactory, good_input, member

pytestmark = pytest.mark.django_db


def label(project, user):
    assignment = queue_next(project=project, annotator=user)
    if assignment is not None:
        judgment_submit(assignment_id=assignment.pk, annotator=user, data=good_input(), client_token=uuid.uuid4())
    return assignment


def test_annotator_never_gets_an_item_twice_and_never_past_k(project, items):
    annotators = [member(project) for _ in range(5)]
    seen: dict[int, set[int]] = {a.pk: set() for a in annotators}
    for _round in range(len(items)):
        for a in annotators:
            assignment = label(project, a)
            if assignment:
                assert assignment.item_id not in seen[a.pk]
                seen[a.pk].add(assignment.item_id)
    for item in Item.objects.filter(project=project):
        assert item.judgment_count == project.overlap == item.judgments.count()
    assert all(queue_next(project=project, annotator=a) is None for a in annotators)


def test_held_lease_is_returned_again_instead_of_a_new_item(project, items, annotator):
    first = queue_next(project=project, annotator=annotator)
    again = queue_next(project=project, annotator=annotator)
    assert again.pk == first.pk
    assert Item.objects.get(pk=first.item_id).assigned_count == 1


def test_skipped_item_is_never_offered_again_and_frees_its_slot(project, annotator):
    only = ItemFactory(project=project)
    assignment = queue_next(project=project, annotator=annotator)
    queue_skip(assignment_id=assignment.pk, annotator=annotator)
    assert Item.objects.get(pk=only.pk).assigned_count == 0
    assert queue_next(project=project, annotator=annotator) is None
    other = member(project)
    assert queue_next(project=project, annotator=other).item_id == only.pk


def test_expired_lease_goes_to_someone_else(project, annotator):
    item = ItemFactory(project=project, target_judgments=1)
    mine = queue_next(project=project, annotator=annotator)
    other = member(project)
    assert queue_next(project=project, annotator=other) is None  # the only slot is leased
    later = timezone.now() + timedelta(seconds=project.lease_seconds + 1)
    theirs = queue_next(project=project, annotator=other, now=later)
    assert theirs.item_id == item.pk
    assert Assignment.objects.get(pk=mine.pk).status == AssignmentStatus.EXPIRED
    assert Item.objects.get(pk=item.pk).assigned_count == 1


def test_left_right_order_is_randomised_and_recorded(project):
    ItemFactory.create_batch(60, project=project, target_judgments=1)
    annotator = member(project)
    sides = []
    for _ in range(60):
        a = label(project, annotator)
        sides.append(Assignment.objects.get(pk=a.pk).shown_left)
    # 60 fair coin flips all landing one way has probability 2**-59.
    assert {"a", "b"} == set(sides)


def test_sweeper_releases_each_expired_lease_once(project, items):
    annotators = [member(project) for _ in range(3)]
    for a in annotators:
        queue_next(project=project, annotator=a)
    later = timezone.now() + timedelta(seconds=project.lease_seconds + 5)
    assert leases_expire(now=later) == 3
    assert leases_expire(now=later) == 0
    assert sum(Item.objects.filter(project=project).values_list("assigned_count", flat=True)) == 0


def test_progress_counts_done_but_not_left(project, items, annotator):
    # No "left": it would move differently after a hidden anchor than after a live item.
    label(project, annotator)
    label(project, annotator)
    assert annotator_progress(project=project, annotator=annotator) == {"done": 2}


def test_hard_items_with_higher_priority_are_served_first(project, annotator):
    ItemFactory(project=project)
    urgent = ItemFactory(project=project, priority=5)
    assert queue_next(project=project, annotator=annotator).item_id == urgent.pk

