"""Feedback names what the annotator saw: an explanation written about the stored responses
("Response A" = the item's first) is rendered in each annotator's own letters and sides, and
authoring refuses references that cannot be resolved."""
from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings, strategies as st

from annotation.models import Role
from calibration.explanations import (
    ExplanationError, explanation_for_annotator, explanation_for_author, explanation_normalise,
)
from calibration.models import Anchor
from calibration.selectors import annotator_calibration_status
from calibration.services.anchors import anchors_import
from calibration.services.queue import calibration_answer, question_next
from tests.calibration.helpers import answer_for
from tests.factories import ProjectFactory, member

WRONG, RIGHT = "Toronto is the capital.", "Ottawa."


@pytest.mark.parametrize("written, a_left, b_left", [
    ("Response A is wrong; Response B is right.",
     "Response A (left) is wrong; Response B (right) is right.",
     "Response B (right) is wrong; Response A (left) is right."),
    ("A is right: B gets the fact wrong.",
     "Response A (left) is right: Response B (right) gets the fact wrong.",
     "Response B (right) is right: Response A (left) gets the fact wrong."),
    ("Prefer answer 2 over answer 1.", "Prefer Response B (right) over Response A (left).",
     "Prefer Response A (left) over Response B (right)."),
    ("Both A and B are fine.", "Both Response A (left) and Response B (right) are fine.",
     "Both Response B (right) and Response A (left) are fine."),
    ("B's claim is false.", "Response B (right)'s claim is false.", "Response A (left)'s claim is false."),
    ("Assistant b hedges, assistant a commits.", "Response B (right) hedges, Response A (left) commits.",
     "Response A (left) hedges, Response B (right) commits."),
    ("Responses A and B agree.", "Response A (left) and Response B (right) agree.",
     "Response B (right) and Response A (left) agree."),
    ("(B) is terse but correct.", "Response B (right) is terse but correct.", "Response A (left) is terse but correct."),
    # Not references: the article, the right answer, code.
    ("A good answer names Ottawa.", "A good answer names Ottawa.", "A good answer names Ottawa."),
    ("The right answer is Ottawa.", "The right answer is Ottawa.", "The right answer is Ottawa."),
    ("Set `B = 2` first; Response A forgets.", "Set `B = 2` first; Response A (left) forgets.",
     "Set `B = 2` first; Response B (right) forgets."),
    ("Both are fine: a matter of taste.", "Both are fine: a matter of taste.", "Both are fine: a matter of taste."),
])
def test_explanations_render_in_each_annotators_own_letters_and_sides(written, a_left, b_left):
    stored = explanation_normalise(written)
    assert explanation_for_annotator(stored, shown_left="a") == a_left
    assert explanation_for_annotator(stored, shown_left="b") == b_left


@pytest.mark.parametrize("written, named", [
    ("The left response is better.", "The left response"),
    ("The first answer is wrong.", "The first answer"),
    ("Response A (left) is better.", "(left)"),
    ("The one on the right is correct.", "on the right"),
    ("The latter is correct.", "The latter"),
    ("Take plan B (the backup) into account.", "lone 'B'"),
    ("Go with the top response.", "the top response"),
])
def test_references_that_cannot_be_resolved_are_refused_with_what_to_write(written, named):
    with pytest.raises(ExplanationError) as exc:
        explanation_normalise(written)
    assert named.lower() in str(exc.value).lower()
    assert "Response A is the item's first response" in str(exc.value)


def test_authoring_terms_survive_a_round_trip():
    stored = explanation_normalise("A is right: answer B gets the fact wrong.")
    assert explanation_for_author(stored) == "Response A is right: Response B gets the fact wrong."
    assert explanation_normalise(explanation_for_author(stored)) == stored


_FRAGMENT = st.sampled_from([
    "Response A", "Response B", "response a", "answer B", "Assistant A", "Output 2", "output 1", "(A)", "(B)",
    "A is", "B is", "than A", "than B", " and ", " is wrong. ", " is right. ", "A good point. ", "the answer ",
    "`B`", "Ottawa", ", ", ". ",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(_FRAGMENT, min_size=1, max_size=12), st.sampled_from("ab"))
def test_every_rendered_name_matches_the_screen(parts, shown_left):
    """Whatever mix of references: every name rendered for an annotator carries the letter of
    the side it names on their screen (A is always left), and it names the response the author
    meant (a reference to the stored first response becomes the side where it was shown)."""
    text = "".join(parts)
    try:
        stored = explanation_normalise(text)
    except ExplanationError:
        return
    shown = explanation_for_annotator(stored, shown_left=shown_left)
    for letter, side in re.findall(r"Response ([AB]) \((left|right)\)", shown):
        assert (letter, side) in {("A", "left"), ("B", "right")}
    meant = [m for m in re.findall(r"\{response_([ab])\}", stored)]
    rendered = re.findall(r"Response ([AB]) \((left|right)\)", shown)
    assert len(meant) == len(rendered)
    for stored_side, (_letter, side) in zip(meant, rendered):
        assert (side == "left") == (stored_side == shown_left)


def _anchor_line(explanation: str, **kw) -> str:
    return json.dumps({
        "prompt": "What is the capital of Canada?", "responses": [WRONG, RIGHT], "domain": "general",
        "expert": {"choice": "b", "strength": "strong", "explanation": explanation, "clear_cut": True,
                   "calibration_set": True, **kw},
    })


@pytest.mark.django_db
def test_the_anchors_import_rewrites_names_and_rejects_screen_positions_with_line_numbers():
    project = ProjectFactory()
    result = anchors_import(project=project, lines=[
        _anchor_line("Response A names Toronto, which is wrong; Response B is right."),
        _anchor_line("The left response names Toronto."),
        _anchor_line("B is right."),
    ])
    assert [e["line"] for e in result.errors] == [2]
    assert "names a place on the screen" in result.errors[0]["message"]
    assert not Anchor.objects.filter(project=project).exists()  # all or nothing
    result = anchors_import(project=project, lines=[
        _anchor_line("Response A names Toronto, which is wrong; Response B is right."),
    ])
    assert result.ok
    stored = Anchor.objects.get(project=project).explanation
    assert stored == "{response_a} names Toronto, which is wrong; {response_b} is right."


def _swapped_round(project, annotator):
    """Open the annotator's round with every question shown swapped (response_b on the left)."""
    question = question_next(project=project, annotator=annotator)
    question.round.questions.update(shown_left="b")
    question.refresh_from_db()
    return question


@pytest.mark.django_db
def test_calibration_feedback_and_the_missed_list_name_the_sides_the_annotator_saw():
    project = ProjectFactory()
    anchors_import(project=project, lines=[
        _anchor_line("Response A names Toronto, which is wrong; Response B is right.") for _ in range(1)
    ])
    # Distinct prompts: a second anchor so the round has more than one question.
    anchors_import(project=project, lines=[json.dumps({
        "prompt": "What is 2+2?", "responses": ["5", "4"], "domain": "general",
        "expert": {"choice": "b", "strength": "strong", "explanation": "Response B is the right sum.",
                   "clear_cut": True, "calibration_set": True}})])
    annotator = member(project, Role.ANNOTATOR)
    question = _swapped_round(project, annotator)
    wrong = answer_for(question.anchor.expert_choice, "b", right=False)
    outcome = calibration_answer(question_id=question.pk, annotator=annotator, data=wrong)
    feedback = outcome.feedback
    # Swapped: the stored second response (Ottawa, the right one) was on the left, lettered A.
    assert feedback["expert_choice"] == "left"
    assert feedback["your_choice"] == "right" and feedback["your_strength"] == "clear"
    if "Toronto" in feedback["explanation"]:
        assert feedback["explanation"] == "Response B (right) names Toronto, which is wrong; Response A (left) is right."
    # Fail the round (the second answer wrong too): the missed list uses the same terms.
    question = question_next(project=project, annotator=annotator)
    calibration_answer(question_id=question.pk, annotator=annotator,
                       data=answer_for(question.anchor.expert_choice, "b", right=False))
    status = annotator_calibration_status(project=project, annotator=annotator)
    assert status["state"] == "needs_retraining"
    assert len(status["missed"]) == 2
    for missed in status["missed"]:
        assert missed["expert_choice"] == "left" and missed["your_choice"] == "right"
        assert "Response A (left)" in missed["explanation"]
    toronto = next(m for m in status["missed"] if "Toronto" in m["explanation"])
    assert toronto["right"] == WRONG and toronto["left"] == RIGHT
    assert toronto["explanation"].startswith("Response B (right) names Toronto")


@pytest.mark.django_db
def test_hidden_gold_feedback_names_the_sides_the_annotator_saw(monkeypatch):
    import uuid

    from annotation.models import Assignment
    from calibration.models import CalibrationPolicy
    from calibration.services import queue as queue_module
    from annotation.services.queue import queue_next, queue_submit
    from tests.factories import ItemFactory

    project = ProjectFactory()
    ItemFactory(project=project)  # live work for the anchor to hide among
    anchors_import(project=project, lines=[_anchor_line(
        "Response A names Toronto, which is wrong; Response B is right.", calibration_set=False)])
    CalibrationPolicy.objects.update_or_create(project=project, defaults={"show_hidden_feedback": True})
    annotator = member(project, Role.ANNOTATOR)
    monkeypatch.setattr(queue_module._rng, "random", lambda: 0.0)
    assignment = queue_next(project=project, annotator=annotator)
    assert not assignment.item.in_live_queue
    Assignment.objects.filter(pk=assignment.pk).update(shown_left="b")
    outcome = queue_submit(assignment_id=assignment.pk, annotator=annotator, client_token=uuid.uuid4(),
                           data=answer_for("b", "b", right=True))
    assert outcome.feedback["correct"] and outcome.feedback["expert_choice"] == "left"
    assert outcome.feedback["your_choice"] == "left"
    assert outcome.feedback["explanation"] == (
        "Response B (right) names Toronto, which is wrong; Response A (left) is right.")
