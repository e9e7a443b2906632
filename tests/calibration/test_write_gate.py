"""Only annotators in good standing write: a lease or a judgment held from before a change of
standing (needs retraining, excluded) or of membership (removed) cannot be used to write anything,
through the API or the pages. Each case first shows that the same write by an active annotator
goes through, so the refusal is the standing's doing and the test can fail."""
from __future__ import annotations

import uuid

import pytest
from django.test import Client

from annotation.models import (
    AdversarialNegative, Assignment, AssignmentStatus, Judgment, Membership, RankingJudgment, Rewrite, Role,
)
from annotation.services.routing import assignment_lease
from calibration.models import StandingState
from annotation.services.queue import queue_next, queue_submit
from calibration.services.standing import standing_override
from tests.factories import api_as, good_input, submit_payload
from tests.factories import (
    ItemFactory, ProjectFactory, adversarial_line, bad_case_line, import_lines, member, ranking_line,
)

pytestmark = pytest.mark.django_db

STATES = ["needs_retraining", "excluded", "removed"]


def _world():
    project = ProjectFactory(overlap=3, skill_domains=[])
    ItemFactory.create_batch(3, project=project)
    import_lines(project, [
        ranking_line("Rank these", 3),
        bad_case_line("Who wrote Hamlet?", "Dickens."),
        adversarial_line("What is 2+2?", "4."),
    ])
    lead = member(project, Role.LEAD)
    annotator = member(project)
    # An earlier judgment to edit, then one lease of every kind held at once.
    first = queue_next(project=project, annotator=annotator)
    judged = queue_submit(assignment_id=first.pk, annotator=annotator, data=good_input(),
                          client_token=uuid.uuid4()).judgment
    held = {kind: assignment_lease(project=project, annotator=annotator, kind=kind)
            for kind in ("comparison", "ranking", "rewrite", "adversarial")}
    assert all(held.values()), held
    return project, lead, annotator, judged, held


def _fall(project, lead, annotator, state: str) -> None:
    if state == "removed":
        Membership.objects.filter(project=project, user=annotator).delete()
    else:
        standing_override(project=project, annotator=annotator, to_state=state, reason="Test.", actor=lead)


def _writes(annotator, judged, held) -> dict:
    """Every API write an annotator can make, each with a fresh client token."""
    client = api_as(annotator)
    token = lambda: str(uuid.uuid4())  # noqa: E731
    return {
        "edit": lambda: client.put(f"/api/judgments/{judged.pk}/",
                                   {"choice": "tie", "rationale": "Changed my mind on this."}, format="json"),
        "submit": lambda: client.post(f"/api/assignments/{held['comparison'].handle}/submit/", submit_payload(),
                                      format="json"),
        "rank": lambda: client.post(f"/api/assignments/{held['ranking'].handle}/rank/",
                                    {"order": "A>B>C", "rationale": "A is the most complete.",
                                     "client_token": token()}, format="json"),
        "rewrite": lambda: client.post(f"/api/assignments/{held['rewrite'].handle}/rewrite/",
                                       {"text": "Shakespeare wrote Hamlet.", "flaws": ["hallucination"],
                                        "rationale": "The author named was wrong.", "client_token": token()},
                                       format="json"),
        "negative": lambda: client.post(f"/api/assignments/{held['adversarial'].handle}/negative/",
                                        {"text": "It is 5, as everyone knows.", "flaw_type": "confident_but_wrong",
                                         "rationale": "Wrong but confident, on purpose.", "client_token": token()},
                                        format="json"),
        "skip": lambda: client.post(f"/api/assignments/{held['comparison'].handle}/skip/"),
    }


def _stored(annotator, judged) -> tuple:
    judged.refresh_from_db()
    return (
        Judgment.objects.filter(annotator=annotator).count(), judged.revision,
        RankingJudgment.objects.filter(annotator=annotator).count(),
        Rewrite.objects.filter(author=annotator).count(),
        AdversarialNegative.objects.filter(author=annotator).count(),
        Assignment.objects.filter(annotator=annotator, status=AssignmentStatus.SKIPPED).count(),
    )


def test_an_active_annotator_can_make_every_write():
    project, lead, annotator, judged, held = _world()
    writes = _writes(annotator, judged, held)
    statuses = {name: writes[name]().status_code for name in ("edit", "submit", "rank", "rewrite", "negative")}
    assert statuses == {"edit": 200, "submit": 201, "rank": 201, "rewrite": 201, "negative": 201}


@pytest.mark.parametrize("state", STATES)
def test_a_fallen_annotator_writes_nothing_through_the_api(state):
    project, lead, annotator, judged, held = _world()
    before = _stored(annotator, judged)
    _fall(project, lead, annotator, state)
    writes = _writes(annotator, judged, held)
    statuses = {name: call().status_code for name, call in writes.items()}
    # A removed member no longer reaches the project's items at all (404 would be fine too);
    # what matters is that nothing is written.
    assert set(statuses.values()) <= {403, 404}, statuses
    if state != "removed":
        assert set(statuses.values()) == {403}, statuses
    assert _stored(annotator, judged) == before


@pytest.mark.parametrize("state", STATES)
def test_a_fallen_annotator_writes_nothing_through_the_pages(state):
    project, lead, annotator, judged, held = _world()
    before = _stored(annotator, judged)
    _fall(project, lead, annotator, state)
    client = Client()
    client.force_login(annotator)
    slug = project.slug
    responses = [
        client.post(f"/p/{slug}/label/{held['comparison'].handle}/submit/",
                    {**submit_payload(), "choice": "left", "strength": "clear"}),
        client.post(f"/p/{slug}/label/{held['ranking'].handle}/rank/",
                    {"order": "A>B>C", "rationale": "A is the most complete.", "client_token": str(uuid.uuid4())}),
        client.post(f"/p/{slug}/label/{held['rewrite'].handle}/rewrite/",
                    {"text": "Shakespeare wrote Hamlet.", "flaws": ["hallucination"],
                     "rationale": "The author named was wrong.", "client_token": str(uuid.uuid4())}),
        client.post(f"/p/{slug}/label/{held['adversarial'].handle}/negative/",
                    {"text": "It is 5, as everyone knows.", "flaw_type": "confident_but_wrong",
                     "rationale": "Wrong but confident, on purpose.", "client_token": str(uuid.uuid4())}),
        client.post(f"/p/{slug}/label/{held['comparison'].handle}/skip/"),
    ]
    assert all(r.status_code in (403, 404) for r in responses), [r.status_code for r in responses]
    if state != "removed":
        # The page says why instead of an error page: the standing panel.
        assert all(r.status_code == 403 for r in responses)
        assert all('id="standing"' in r.content.decode() for r in responses)
    assert _stored(annotator, judged) == before


def test_a_submit_racing_a_change_of_standing_is_refused_in_its_transaction():
    """The service itself refuses (not only the view): a script calling it after the change,
    with a lease from before, gets NotAllowed."""
    from annotation.errors import NotAllowed

    project, lead, annotator, judged, held = _world()
    standing_override(project=project, annotator=annotator, to_state=StandingState.EXCLUDED, reason="Test.",
                      actor=lead)
    with pytest.raises(NotAllowed):
        queue_submit(assignment_id=held["comparison"].pk, annotator=annotator, data=good_input(),
                     client_token=uuid.uuid4())
    assert not Judgment.objects.filter(assignment=held["comparison"]).exists()
