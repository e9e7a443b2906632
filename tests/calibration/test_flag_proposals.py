"""Flags that act: a computed flag proposes retraining; a lead accepts (standing changes, audited
with the flag and the lead) or rejects with one click (recorded, not proposed again for two
weeks); nobody else may decide; a decided proposal cannot be decided again."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annotation.models import Role
from calibration.generators import simulation as sm
from calibration.generators.simulation_store import simulation_store
from calibration.models import FlagProposal, Standing, StandingChange
from calibration.services.analytics import analytics_compute, snapshot_request, snapshot_run
from calibration.services.proposals import proposals_sync
from tests.factories import ProjectFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def flagged(django_capture_on_commit_callbacks):
    project = ProjectFactory()
    sim = sm.simulate(kinds=["expert"] * 5 + ["length", "position"], n_items=300, per_item=5, seed=4)
    stored = simulation_store(project=project, sim=sim, prefix=f"fp{project.pk}")
    snapshot_run(snapshot_id=snapshot_request(project=project).pk)
    return project, stored["users"]


def test_a_computation_proposes_each_flag_once(flagged):
    project, users = flagged
    proposals = FlagProposal.objects.filter(project=project)
    kinds = {(p.annotator.username.split("-")[1], p.flag_kind) for p in proposals}
    assert ("length", "length") in kinds and ("position", "position") in kinds
    assert not any(k.startswith("expert") for k, _ in kinds)
    assert all(p.status == "open" and p.proposed_state == "needs_retraining" for p in proposals)
    # The next computation opens nothing new while they wait.
    assert proposals_sync(project=project, payload=analytics_compute(project=project)) == 0


def test_a_lead_accepts_or_rejects_with_one_click_and_both_are_recorded(flagged):
    project, users = flagged
    lead = member(project, Role.LEAD)
    client = Client()
    client.force_login(lead)
    page = client.get(f"/p/{project.slug}/calibration/").content.decode()
    assert 'id="proposals"' in page and "Accept" in page
    length = FlagProposal.objects.get(project=project, flag_kind="length")
    position = FlagProposal.objects.get(project=project, flag_kind="position")
    assert client.post(f"/p/{project.slug}/calibration/proposals/{length.pk}/", {"decision": "accept"}).status_code == 302
    standing = Standing.objects.get(project=project, annotator=length.annotator)
    assert standing.state == "needs_retraining"
    change = StandingChange.objects.filter(project=project, annotator=length.annotator).latest("created_at")
    assert change.actor == lead and change.cause == "override" and "Bias flag accepted" in change.reason
    client.post(f"/p/{project.slug}/calibration/proposals/{position.pk}/", {"decision": "reject", "note": "Known layout issue."})
    position.refresh_from_db()
    assert (position.status, position.decided_by, position.decision_note) == ("rejected", lead, "Known layout issue.")
    assert not Standing.objects.filter(project=project, annotator=position.annotator, state="needs_retraining").exists()
    # Decided once: a second click changes nothing and says so.
    again = client.post(f"/p/{project.slug}/calibration/proposals/{position.pk}/", {"decision": "accept"}, follow=True)
    assert "already rejected" in again.content.decode()
    # Not proposed again for two weeks; after that, a flag still there is proposed again.
    payload = analytics_compute(project=project)
    assert proposals_sync(project=project, payload=payload) == 0
    assert proposals_sync(project=project, payload=payload, now=timezone.now() + timedelta(days=15)) == 1  # position only


def test_only_leads_decide(flagged):
    project, _users = flagged
    proposal = FlagProposal.objects.filter(project=project).first()
    url = f"/p/{project.slug}/calibration/proposals/{proposal.pk}/"
    assert Client().post(url, {"decision": "accept"}).status_code == 302  # to the login page
    for who, status in ((member(project), 403), (member(project, Role.ENGINEER), 403), (member(ProjectFactory(), Role.LEAD), 404)):
        client = Client()
        client.force_login(who)
        assert client.post(url, {"decision": "accept"}).status_code == status
    proposal.refresh_from_db()
    assert proposal.status == "open"
