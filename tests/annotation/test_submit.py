"""Submitting judgments: validation, idempotency, canonical mapping, spec versions, edits."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.errors import Conflict, ValidationFailed
from annotation.models import Judgment, JudgmentRevision
from annotation.services.judgments import JudgmentInput, judgment_edit, judgment_submit
from annotation.services.projects import spec_publish
from annotation.services.queue import queue_next
from tests.factories import ItemFactory, good_input, member

pytestmark = pytest.mark.django_db


def test_choice_is_stored_canonically_with_the_side_it_was_shown_on(project, items, annotator):
    assignment = queue_next(project=project, annotator=annotator)
    judgment, _ = judgment_submit(
        assignment_id=assignment.pk, annotator=annotator,
        data=good_input("left", dimensions={"accuracy": "right"}), client_token=uuid.uuid4(),
    )
    other = "b" if assignment.shown_left == "a" else "a"
    assert judgment.shown_left == assignment.shown_left
    assert judgment.choice == assignment.shown_left
    assert judgment.dimension_choices == {"accuracy": other}


def test_retried_submit_with_same_token_returns_the_first_judgment(project, items, annotator):
    assignment = queue_next(project=project, annotator=annotator)
    token = uuid.uuid4()
    first, created = judgment_submit(assignment_id=assignment.pk, annotator=annotator, data=good_input(), client_token=token)
    again, created_again = judgment_submit(assignment_id=assignment.pk, annotator=annotator, data=good_input("right"), client_token=token)
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk and again.choice == first.choice
    assert Judgment.objects.count() == 1


def test_second_submit_with_a_new_token_is_refused(project, items, annotator):
    assignment = queue_next(project=project, annotator=annotator)
    judgment_submit(assignment_id=assignment.pk, annotator=annotator, data=good_input(), client_token=uuid.uuid4())
    with pytest.raises(Conflict, match="already judged"):
        judgment_submit(assignment_id=assignment.pk, annotator=annotator, data=good_input(), client_token=uuid.uuid4())


@pytest.mark.parametrize(
    "data, field",
    [
        (JudgmentInput(choice="", rationale="long enough reason"), "choice"),
        (JudgmentInput(choice="left", strength="", rationale="long enough reason"), "strength"),
        (JudgmentInput(choice="tie", strength="strong", rationale="long enough reason"), "strength"),
        (JudgmentInput(choice="left", strength="clear", rationale="short"), "rationale"),
        (JudgmentInput(choice="left", strength="clear", rationale="   padded   "), "rationale"),
        (JudgmentInput(choice="left", strength="clear", rationale="long enough reason", dimensions={"vibes": "left"}), "dimensions.vibes"),
        (JudgmentInput(choice="left", strength="clear", rationale="long enough reason", dimensions={"tone": "maybe"}), "dimensions.tone"),
    ],
)
def test_invalid_submit_says_what_is_wrong_and_stores_nothing(project, items, annotator, data, field):
    assignment = queue_next(project=project, annotator=annotator)
    with pytest.raises(ValidationFailed) as caught:
        judgment_submit(assignment_id=assignment.pk, annotator=annotator, data=data, client_token=uuid.uuid4())
    assert field in caught.value.field_errors
    assert caught.value.field_errors[field]
    assert not Judgment.objects.exists()


def test_rationale_error_names_the_minimum(project, items, annotator):
    assignment = queue_next(project=project, annotator=annotator)
    with pytest.raises(ValidationFailed) as caught:
        judgment_submit(assignment_id=assignment.pk, annotator=annotator,
                        data=JudgmentInput(choice="tie", rationale="meh"), client_token=uuid.uuid4())
    message = caught.value.field_errors["rationale"]
    assert "at least 10 characters" in message and "(3 so far)" in message


def test_late_submit_after_expiry_is_accepted_while_the_item_has_room(project, annotator):
    ItemFactory(project=project, target_judgments=2)
    assignment = queue_next(project=project, annotator=annotator)
    later = timezone.now() + timedelta(seconds=project.lease_seconds + 1)
    other = member(project)
    queue_next(project=project, annotator=other, now=later)  # sweeps our lease, takes 1 slot
    judgment, created = judgment_submit(assignment_id=assignment.pk, annotator=annotator, data=good_input(), client_token=uuid.uuid4())
    assert created and judgment.item.assigned_count == 2


def test_late_submit_after_the_item_filled_up_is_refused_clearly(project, annotator):
    ItemFactory(project=project, target_judgments=1)
    assignment = queue_next(project=project, annotator=annotator)
    later = timezone.now() + timedelta(seconds=project.lease_seconds + 1)
    other = member(project)
    queue_next(project=project, annotator=other, now=later)
    with pytest.raises(Conflict, match="expired"):
        judgment_submit(assignment_id=assignment.pk, annotator=annotator, data=good_input(), client_token=uuid.uuid4())
    assert not Judgment.objects.exists()


def test_judgment_records_the_spec_version_it_was_made_under(project, items, annotator):
    first = queue_next(project=project, annotator=annotator)
    j1, _ = judgment_submit(assignment_id=first.pk, annotator=annotator, data=good_input(), client_token=uuid.uuid4())
    spec_publish(project=project, text="# Spec v2\nNew rule.")
    second = queue_next(project=project, annotator=annotator)
    j2, _ = judgment_submit(assignment_id=second.pk, annotator=annotator, data=good_input(), client_token=uuid.uuid4())
    assert (j1.spec_version.version, j2.spec_version.version) == (1, 2)


def test_edit_keeps_the_previous_version_in_history(project, items, annotator):
    assignment = queue_next(project=project, annotator=annotator)
    judgment, _ = judgment_submit(assignment_id=assignment.pk, annotator=annotator, data=good_input("left"), client_token=uuid.uuid4())
    before = judgment.choice
    edited = judgment_edit(judgment_id=judgment.pk, editor=annotator, data=good_input("tie", rationale="On reflection, equal."))
    assert edited.choice == "tie" and edited.strength == "" and edited.revision == 2
    old = JudgmentRevision.objects.get(judgment=judgment)
    assert (old.revision, old.choice, old.rationale) == (1, before, "Left is accurate and concise.")


def test_nobody_edits_someone_elses_judgment(project, items, annotator):
    assignment = queue_next(project=project, annotator=annotator)
    judgment, _ = judgment_submit(assignment_id=assignment.pk, annotator=annotator, data=good_input(), client_token=uuid.uuid4())
    with pytest.raises(Judgment.DoesNotExist):
        judgment_edit(judgment_id=judgment.pk, editor=member(project), data=good_input("tie"))


def test_a_submit_token_cannot_be_reused_for_another_item(project, items, annotator):
    token = uuid.uuid4()
    first = queue_next(project=project, annotator=annotator)
    judgment_submit(assignment_id=first.pk, annotator=annotator, data=good_input(), client_token=token)
    second = queue_next(project=project, annotator=annotator)
    with pytest.raises(Conflict, match="already used for another item"):
        judgment_submit(assignment_id=second.pk, annotator=annotator, data=good_input(), client_token=token)
    assert Judgment.objects.count() == 1
