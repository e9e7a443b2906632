"""Standing: automatic moves from anchor results (window, CUSUM), lead overrides, the audit trail;
anchors edited with history, imported all-or-nothing, and the calibration set chosen for coverage."""
from __future__ import annotations

import pytest

from annotation.errors import ValidationFailed
from annotation.models import AssignmentStatus, Item, Role
from calibration.errors import CalibrationRequired
from calibration.models import Anchor, AnchorResult, StandingChange
from calibration.selectors import alerts_open, anchor_agreement, standings_table
from calibration.services import queue as queue_module
from calibration.services.anchors import (
    ExpertAnswer,
    anchor_update,
    anchors_import,
    calibration_set_choose,
)
from calibration.services.policy import policy_update
from annotation.services.queue import queue_next
from calibration.services.standing import standing_override
from calibration.stats import CusumParams, cusum_trace
from tests.factories import ItemFactory, ProjectFactory, make_anchor, member

from .helpers import label_live

pytestmark = pytest.mark.django_db


@pytest.fixture
def live_project(db):
    """No calibration set (annotators start active), plenty of hidden anchors."""
    project = ProjectFactory(overlap=1)
    ItemFactory.create_batch(60, project=project)
    for i in range(150):
        make_anchor(project, choice="ab"[i % 2])
    return project


def _answer_hidden(project, annotator, errors: list[bool], monkeypatch) -> list[str]:
    """Answer one hidden anchor per entry (True = disagree with the expert); the standing after each."""
    monkeypatch.setattr(queue_module._rng, "random", lambda: 0.0)
    states = []
    for error in errors:
        try:
            assignment, _ = label_live(project, annotator, agree_with_expert=not error)
        except CalibrationRequired as exc:
            states.append(exc.state)
            break
        assert not assignment.item.in_live_queue
        states.append(annotator.standings.get(project=project).state)
    return states


def test_cusum_alarm_on_an_annotator_whose_error_rate_jumps(live_project, monkeypatch):
    project = live_project
    # Isolate the CUSUM: the window would need 1000 answers to act.
    policy_update(project=project, changes={"window_size": 1000, "window_min": 1000})
    annotator = member(project, Role.ANNOTATOR)
    # 40 answers at a 5% error rate (every 20th wrong), then 60% wrong (3 of every 5).
    before = [i % 20 == 19 for i in range(40)]
    after = [i % 5 in (0, 2, 4) for i in range(40)]
    states = _answer_hidden(project, annotator, before + after, monkeypatch)
    # Where the alarm must sound, from the same statistic computed on the plain sequence:
    expected = cusum_trace(before + after, CusumParams(p0=0.10, p1=0.35, h=4.0))
    assert expected.alarm_at is not None and expected.alarm_at >= len(before)  # no false alarm before the jump
    assert states[: expected.alarm_at] == ["active"] * expected.alarm_at
    assert states[expected.alarm_at] == "needs_retraining"
    change = StandingChange.objects.filter(annotator=annotator, cause="cusum").get()
    assert change.evidence["cusum"] == pytest.approx(expected.values[expected.alarm_at])
    assert change.actor is None and change in alerts_open(project=project)
    with pytest.raises(CalibrationRequired):
        queue_next(project=project, annotator=annotator)


def test_cusum_by_hand_sequence_in_the_database(live_project, monkeypatch):
    project = live_project
    policy_update(project=project, changes={"cusum_p0": 0.1, "cusum_p1": 0.3, "cusum_h": 2.5,
                                            "window_size": 1000, "window_min": 1000})
    annotator = member(project, Role.ANNOTATOR)
    # The hand-computed sequence of test_stats: alarm at the fifth answer (index 4), CUSUM 3.044522.
    states = _answer_hidden(project, annotator, [False, True, False, True, True, False], monkeypatch)
    assert states[:5] == ["active"] * 4 + ["needs_retraining"]
    assert StandingChange.objects.get(annotator=annotator, cause="cusum").evidence["cusum"] == pytest.approx(3.044522, abs=1e-6)


def test_rolling_window_moves_an_active_annotator(live_project, monkeypatch):
    project = live_project
    policy_update(project=project, changes={"window_size": 10, "window_min": 10, "cusum_h": 100})
    annotator = member(project, Role.ANNOTATOR)
    states = _answer_hidden(project, annotator, [False] * 7 + [True] * 3 + [True], monkeypatch)
    # 3 of 10 wrong = 30% > 25% as soon as the window is full
    assert states[9] == "needs_retraining"
    change = StandingChange.objects.get(annotator=annotator, cause="window")
    assert change.evidence["answered"] == 10 and change.evidence["wrong"] == 3


def test_non_clear_cut_anchors_never_move_anyone(db, monkeypatch):
    project = ProjectFactory(overlap=1)
    ItemFactory.create_batch(5, project=project)
    for _ in range(20):
        make_anchor(project, clear_cut=False)
    policy_update(project=project, changes={"window_size": 5, "window_min": 5})
    annotator = member(project, Role.ANNOTATOR)
    states = _answer_hidden(project, annotator, [True] * 15, monkeypatch)
    assert set(states) == {"active"}


def test_override_needs_a_reason_releases_leases_and_is_audited(live_project):
    project = live_project
    lead = member(project, Role.LEAD)
    annotator = member(project, Role.ANNOTATOR)
    held = queue_next(project=project, annotator=annotator)
    with pytest.raises(ValidationFailed):
        standing_override(project=project, annotator=annotator, to_state="excluded", reason=" ", actor=lead)
    standing_override(project=project, annotator=annotator, to_state="excluded", reason="Copy-pasted rationales", actor=lead)
    held.refresh_from_db()
    assert held.status == AssignmentStatus.EXPIRED
    assert Item.objects.get(pk=held.item_id).assigned_count == 0
    with pytest.raises(CalibrationRequired):
        queue_next(project=project, annotator=annotator)
    standing_override(project=project, annotator=annotator, to_state="active", reason="Talked it through", actor=lead)
    assert queue_next(project=project, annotator=annotator) is not None
    trail = list(StandingChange.objects.filter(annotator=annotator).order_by("id").values_list("from_state", "to_state", "cause", "actor", "reason"))
    assert trail == [
        ("", "active", "joined", None, trail[0][4]),
        ("active", "excluded", "override", lead.pk, "Copy-pasted rationales"),
        ("excluded", "active", "override", lead.pk, "Talked it through"),
    ]
    row = next(r for r in standings_table(project=project) if r["annotator"] == annotator)
    assert row["state"] == "active" and row["last_change"].reason == "Talked it through"


def test_override_to_calibrating_assigns_a_round(db):
    project = ProjectFactory()
    make_anchor(project, in_set=True)
    lead, annotator = member(project, Role.LEAD), member(project, Role.ANNOTATOR)
    standing_override(project=project, annotator=annotator, to_state="active", reason="Senior hire", actor=lead)
    standing_override(project=project, annotator=annotator, to_state="calibrating", reason="Periodic check", actor=lead)
    from calibration.services.queue import question_next

    assert question_next(project=project, annotator=annotator) is not None


def test_editing_the_expert_answer_keeps_history_and_rescores(live_project, monkeypatch):
    project = live_project
    lead = member(project, Role.LEAD)
    annotator = member(project, Role.ANNOTATOR)
    _answer_hidden(project, annotator, [False], monkeypatch)
    result = AnchorResult.objects.get(annotator=annotator)
    anchor = result.anchor
    assert result.correct
    original = anchor.expert_choice
    flipped = "b" if original == "a" else "a"
    with pytest.raises(ValidationFailed):  # a changed answer needs a reason
        anchor_update(anchor_id=anchor.pk, project=project, editor=lead,
                      answer=ExpertAnswer(choice=flipped, strength="slight", explanation="Fixed."))
    anchor_update(anchor_id=anchor.pk, project=project, editor=lead, reason="The expert misread B",
                  answer=ExpertAnswer(choice=flipped, strength="slight", explanation="B is right after all."))
    anchor.refresh_from_db()
    result.refresh_from_db()
    assert anchor.revision == 2 and not result.correct
    same = ExpertAnswer(choice=flipped, strength="slight", explanation="B is right after all.")
    anchor_update(anchor_id=anchor.pk, project=project, editor=lead, answer=same, in_calibration_set=True)
    anchor.refresh_from_db()
    assert anchor.revision == 2 and anchor.in_calibration_set  # no change of answer: no reason, no revision
    revision = anchor.revisions.get()
    assert (revision.expert_choice, revision.reason, revision.replaced_by) == (original, "The expert misread B", lead)


def test_bad_anchor_stands_out(db, monkeypatch):
    project = ProjectFactory(overlap=1)
    ItemFactory.create_batch(3, project=project)
    anchor = make_anchor(project)
    people = [member(project, Role.ANNOTATOR) for _ in range(6)]
    for person in people:
        _answer_hidden(project, person, [True], monkeypatch)
    row = next(r for r in anchor_agreement(project=project) if r["anchor"].pk == anchor.pk)
    assert row["answers"] == 6 and row["agreement"] == 0 and row["suspect"]


GOOD = '{"prompt": "2+2?", "responses": ["4", "5"], "domain": "math", "expert": {"choice": "a", "strength": "strong", "explanation": "4 is right.", "calibration_set": true}}'


def test_anchor_import_is_all_or_nothing_with_line_numbers(db):
    project = ProjectFactory()
    lines = [
        GOOD,
        '{"prompt": "x", "responses": ["a", "b"]}',
        '{"prompt": "y", "responses": ["a", "b"], "expert": {"choice": "c", "explanation": "e"}}',
        "",
        '{"prompt": "z", "responses": ["a", "b"], "expert": {"choice": "b", "strength": "clear", "explanation": ""}}',
    ]
    result = anchors_import(project=project, lines=lines)
    assert [e["line"] for e in result.errors] == [2, 3, 5]
    assert "missing 'expert'" in result.errors[0]["message"]
    assert Anchor.objects.count() == 0 and Item.objects.filter(project=project).count() == 0
    ok = anchors_import(project=project, lines=[GOOD, GOOD.replace("2+2", "3+3").replace('["4", "5"]', '["6", "7"]')])
    assert ok.ok and ok.created == 2
    assert Item.objects.filter(project=project, in_live_queue=False).count() == 2
    assert Anchor.objects.filter(project=project, in_calibration_set=True).count() == 2


def test_calibration_set_covers_every_domain_and_balances_sides(db):
    project = ProjectFactory()
    for domain in ("coding", "math", "safety", "writing"):
        for i in range(6):
            make_anchor(project, domain=domain, choice="ab"[i % 2], clear_cut=i != 0)
    coverage = calibration_set_choose(project=project, size=8)
    assert coverage["size"] == 8
    assert coverage["domains"] == {"coding": 2, "math": 2, "safety": 2, "writing": 2}
    assert coverage["clear_cut"] == 8  # clear-cut ones first
    assert abs(coverage["expert_sides"]["a"] - coverage["expert_sides"]["b"]) <= 2
