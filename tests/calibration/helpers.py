"""Answering calibration questions and live items the way a client would (in shown terms)."""
from __future__ import annotations

import uuid

from annotation.services.judgments import JudgmentInput
from annotation.sides import to_shown
from calibration.services.queue import calibration_answer, question_next
from annotation.services.queue import queue_next, queue_submit


def answer_for(expert_choice: str, shown_left: str, *, right: bool) -> JudgmentInput:
    """The input that agrees (right=True) or disagrees with the expert, as seen on screen."""
    shown = to_shown(expert_choice, shown_left=shown_left)
    if not right:
        shown = {"left": "right", "right": "left", "tie": "left", "both_bad": "left"}[shown]
    return JudgmentInput(
        choice=shown, strength="clear" if shown in ("left", "right") else "",
        rationale="My reasons, written out in full.", time_spent_ms=5000,
    )


def run_round(project, annotator, *, wrong: int):
    """Answer the open round, getting the first `wrong` questions wrong. Returns the last outcome."""
    outcome, answered = None, 0
    while (question := question_next(project=project, annotator=annotator)) is not None:
        data = answer_for(question.anchor.expert_choice, question.shown_left, right=answered >= wrong)
        outcome = calibration_answer(question_id=question.pk, annotator=annotator, data=data)
        answered += 1
    return outcome


def label_live(project, annotator, *, agree_with_expert=None):
    """Take the next item and submit it. With an anchor, agree or disagree with its expert as told."""
    assignment = queue_next(project=project, annotator=annotator)
    if assignment is None:
        return None, None
    anchor = getattr(assignment.item, "anchor", None) if assignment.item.in_live_queue is False else None
    if anchor is not None and agree_with_expert is not None:
        data = answer_for(anchor.expert_choice, assignment.shown_left, right=agree_with_expert)
    else:
        data = JudgmentInput(choice="left", strength="clear", rationale="Left reads better overall.")
    outcome = queue_submit(assignment_id=assignment.pk, annotator=annotator, data=data, client_token=uuid.uuid4())
    return assignment, outcome
