"""The onboarding gate: calibration set first, live work only after passing."""
from __future__ import annotations

import pytest

from annotation.models import Assignment, Judgment, Role
from calibration.errors import CalibrationRequired
from calibration.models import RoundStatus, StandingChange, StandingState
from calibration.selectors import annotator_calibration_status
from calibration.services.policy import policy_update
from calibration.services.queue import question_next
from annotation.services.queue import queue_next
from calibration.services.standing import recalibration_assign
from tests.factories import ItemFactory, ProjectFactory, api_as, member, submit_payload

from .helpers import answer_for, run_round

pytestmark = pytest.mark.django_db


def test_newcomer_sees_only_the_calibration_set_until_they_pass(calibrated_project, newcomer):
    project, in_set, _hidden = calibrated_project
    with pytest.raises(CalibrationRequired):
        queue_next(project=project, annotator=newcomer)
    response = api_as(newcomer).post(f"/api/projects/{project.slug}/next/")
    assert response.status_code == 403 and response.json()["standing"] == "calibrating"
    seen = set()
    while (question := question_next(project=project, annotator=newcomer)) is not None:
        seen.add(question.anchor_id)
        with pytest.raises(CalibrationRequired):  # still gated mid-round
            queue_next(project=project, annotator=newcomer)
        from calibration.services.queue import calibration_answer

        calibration_answer(question_id=question.pk, annotator=newcomer,
                           data=answer_for(question.anchor.expert_choice, question.shown_left, right=True))
    assert seen == {a.pk for a in in_set}
    assert not Assignment.objects.filter(annotator=newcomer).exists()
    assignment = queue_next(project=project, annotator=newcomer)
    assert assignment is not None


def test_annotator_below_the_bar_never_receives_a_live_item(calibrated_project, newcomer):
    project, _in_set, _hidden = calibrated_project
    outcome = run_round(project, newcomer, wrong=2)  # 2 of 4 = 50% > 25%
    assert outcome.finished and outcome.state == StandingState.NEEDS_RETRAINING
    for _ in range(5):
        with pytest.raises(CalibrationRequired):
            queue_next(project=project, annotator=newcomer)
        assert api_as(newcomer).post(f"/api/projects/{project.slug}/next/").status_code == 403
    assert not Assignment.objects.filter(annotator=newcomer).exists()
    status = annotator_calibration_status(project=project, annotator=newcomer)
    assert status["state"] == "needs_retraining"
    assert len(status["missed"]) == 2 and all(m["explanation"] for m in status["missed"])


def test_exactly_at_the_threshold_passes(calibrated_project, newcomer):
    project, _in_set, _hidden = calibrated_project
    outcome = run_round(project, newcomer, wrong=1)  # 1 of 4 = 25%, at the default bar
    assert outcome.state == StandingState.ACTIVE
    assert api_as(newcomer).post(f"/api/projects/{project.slug}/next/").status_code == 200


def test_threshold_is_a_project_setting(calibrated_project, newcomer):
    project, _in_set, _hidden = calibrated_project
    policy_update(project=project, changes={"disagreement_threshold": 0.0})
    assert run_round(project, newcomer, wrong=1).state == StandingState.NEEDS_RETRAINING


def test_failed_then_retrained_then_passed_then_live(calibrated_project, newcomer, calib_lead):
    project, _in_set, _hidden = calibrated_project
    run_round(project, newcomer, wrong=3)
    recalibration_assign(project=project, annotator=newcomer, assigned_by=calib_lead, reason="Read the spec again")
    assert question_next(project=project, annotator=newcomer) is not None
    outcome = run_round(project, newcomer, wrong=0)
    assert outcome.state == StandingState.ACTIVE and outcome.round.number == 2
    body = api_as(newcomer).post(f"/api/projects/{project.slug}/next/").json()
    done = api_as(newcomer).post(f"/api/assignments/{body['assignment']}/submit/", submit_payload(), format="json")
    assert done.status_code == 201 and Judgment.objects.filter(annotator=newcomer).count() == 1
    causes = list(StandingChange.objects.filter(annotator=newcomer).order_by("id").values_list("cause", "to_state"))
    assert causes == [
        ("joined", "calibrating"), ("round_failed", "needs_retraining"),
        ("recalibration", "calibrating"), ("round_passed", "active"),
    ]


def test_repeated_failures_exclude_the_annotator(calibrated_project, newcomer, calib_lead):
    project, _in_set, _hidden = calibrated_project
    policy_update(project=project, changes={"exclude_after_failed_rounds": 2})
    run_round(project, newcomer, wrong=4)
    recalibration_assign(project=project, annotator=newcomer, assigned_by=calib_lead)
    outcome = run_round(project, newcomer, wrong=4)
    assert outcome.state == StandingState.EXCLUDED
    with pytest.raises(CalibrationRequired):
        queue_next(project=project, annotator=newcomer)


def test_a_repeated_answer_counts_once(calibrated_project, newcomer):
    from calibration.services.queue import calibration_answer

    project, _in_set, _hidden = calibrated_project
    question = question_next(project=project, annotator=newcomer)
    data = answer_for(question.anchor.expert_choice, question.shown_left, right=False)
    first = calibration_answer(question_id=question.pk, annotator=newcomer, data=data)
    again = calibration_answer(question_id=question.pk, annotator=newcomer, data=data)
    assert first.result.pk == again.result.pk
    assert first.round.clear_cut_wrong == 1
    question.round.refresh_from_db()
    assert question.round.clear_cut_answered == 1 and question.round.status == RoundStatus.OPEN


def test_feedback_after_each_answer_shows_the_expert_in_screen_terms(calibrated_project, newcomer):
    from calibration.services.queue import calibration_answer

    project, _in_set, _hidden = calibrated_project
    question = question_next(project=project, annotator=newcomer)
    data = answer_for(question.anchor.expert_choice, question.shown_left, right=True)
    outcome = calibration_answer(question_id=question.pk, annotator=newcomer, data=data)
    assert outcome.feedback["correct"] is True
    assert outcome.feedback["expert_choice"] == data.choice  # left/right as the annotator saw it
    from calibration.explanations import explanation_for_annotator

    assert outcome.feedback["explanation"] == explanation_for_annotator(
        question.anchor.explanation, shown_left=question.shown_left)


def test_projects_without_a_calibration_set_are_open(db):
    project = ProjectFactory()
    ItemFactory.create_batch(2, project=project)
    annotator = member(project, Role.ANNOTATOR)
    assert queue_next(project=project, annotator=annotator) is not None
