"""Preference-set pages: a lead freezes from the form, reads the set's page (coverage, warnings,
downloads, what changed since the previous version); annotators and outsiders are refused."""
from __future__ import annotations

import pytest
from django.test import Client

from annotation.models import Role
from rewards.models import FreezeRequest, PreferenceSet
from rewards.services.sets import freeze_run
from tests.factories import ItemFactory, ProjectFactory, label_all, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def labelled():
    project = ProjectFactory(overlap=2)
    ItemFactory.create_batch(8, project=project)
    label_all(project, [member(project) for _ in range(2)])
    return project


def _as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_lead_freezes_from_the_form_and_reads_the_set_page(labelled):
    project = labelled
    lead = _as(member(project, Role.LEAD))
    url = f"/p/{project.slug}/sets/"
    response = lead.post(url, {"name": "first <b>cut</b>", "aggregation": "majority", "standings": ["active"],
                               "tags": ["comparison"], "test_fraction": "0.25", "seed": "2", "domain_targets": "general=1"})
    # Queued for a worker; the page polls the freeze's progress until the set exists.
    freeze = FreezeRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/p/{project.slug}/sets/freezing/{freeze.pk}/"
    polled = lead.get(response["Location"], HTTP_HX_REQUEST="true")
    assert polled.status_code == 200 and 'data-status="queued"' in polled.content.decode() and "every 1s" in polled.content.decode()
    freeze_run(request_id=freeze.pk)  # what the worker does (tests/frontend/test_sets_browser.py: a real one)
    polled = lead.get(response["Location"], HTTP_HX_REQUEST="true")
    assert polled["HX-Redirect"] == f"/p/{project.slug}/sets/1/"
    response = lead.get(response["Location"])
    s = PreferenceSet.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/p/{project.slug}/sets/1/"
    assert s.policy["test_fraction"] == 0.25 and s.policy["domain_targets"] == {"general": 1.0}
    page = lead.get(response["Location"]).content.decode()
    assert s.content_hash in page and 'id="set-pairs">8<' in page and "first &lt;b&gt;cut&lt;/b&gt;" in page
    assert "Only 8 pairs" in page and "Hard cases are 0%" in page
    assert f"/api/sets/{s.pk}/export/?format=verl" in page and f"/api/sets/{s.pk}/export/?format=rm-r1&amp;split=test" in page
    assert 'id="set-data"' in page and 'id="set-diff"' not in page
    lead.post(url, {"aggregation": "none", "standings": ["active"], "tags": ["comparison"], "test_fraction": "0.25"})
    freeze_run(request_id=FreezeRequest.objects.latest("pk").pk)
    second = lead.get(f"/p/{project.slug}/sets/2/").content.decode()
    assert 'id="set-diff"' in second and "<b>16</b> added" in second and "<b>8</b> removed" in second
    listing = lead.get(url).content.decode()
    assert "v1" in listing and "v2" in listing


def test_a_bad_policy_freezes_nothing_and_says_why(labelled):
    project = labelled
    lead = _as(member(project, Role.LEAD))
    response = lead.post(f"/p/{project.slug}/sets/", {"aggregation": "majority", "domain_targets": "general"}, follow=True)
    assert "Not frozen" in response.content.decode() and not PreferenceSet.objects.exists()
    response = lead.post(f"/p/{project.slug}/sets/", {"aggregation": "majority", "test_fraction": "0.99",
                                                        "domain_targets": "a=0.8,b=0.8"}, follow=True)
    assert "domain_targets" in response.content.decode() and not PreferenceSet.objects.exists()


def test_set_pages_refuse_annotators_and_outsiders(labelled):
    project = labelled
    engineer = member(project, Role.ENGINEER)
    _as(engineer).post(f"/p/{project.slug}/sets/", {"aggregation": "majority"})
    freeze_run(request_id=FreezeRequest.objects.get().pk)
    assert PreferenceSet.objects.count() == 1  # engineers freeze too
    freezing = f"/p/{project.slug}/sets/freezing/{FreezeRequest.objects.get().pk}/"
    assert _as(member(project, Role.ANNOTATOR)).get(freezing).status_code == 403
    assert _as(member(ProjectFactory(), Role.LEAD)).get(freezing).status_code == 404
    for path in (f"/p/{project.slug}/sets/", f"/p/{project.slug}/sets/1/"):
        assert Client().get(path).status_code == 302
        assert _as(member(project, Role.ANNOTATOR)).get(path).status_code == 403
        assert _as(member(ProjectFactory(), Role.LEAD)).get(path).status_code == 404
    assert _as(member(project, Role.ANNOTATOR)).post(f"/p/{project.slug}/sets/", {"aggregation": "majority"}).status_code == 403
    assert PreferenceSet.objects.count() == 1 and FreezeRequest.objects.count() == 1
    assert _as(engineer).get(f"/p/{project.slug}/sets/9/").status_code == 404


def test_a_freeze_that_fails_or_that_no_worker_takes_ends_failed_with_its_reason(labelled, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    import rewards.services.sets as sets_service

    project = labelled
    lead = _as(member(project, Role.LEAD))
    lead.post(f"/p/{project.slug}/sets/", {"aggregation": "majority"})
    broken = FreezeRequest.objects.get()

    def crash(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sets_service, "preference_set_freeze", crash)
    with pytest.raises(RuntimeError):
        freeze_run(request_id=broken.pk)
    broken.refresh_from_db()
    assert (broken.status, broken.error) == ("failed", "RuntimeError: disk full")
    page = lead.get(f"/p/{project.slug}/sets/freezing/{broken.pk}/").content.decode()
    assert "Nothing was frozen: RuntimeError: disk full" in page and "every 1s" not in page
    # Queued long ago and never taken: the next look fails it instead of polling forever.
    lead.post(f"/p/{project.slug}/sets/", {"aggregation": "majority"})
    lost = FreezeRequest.objects.latest("pk")
    FreezeRequest.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(hours=1))
    page = lead.get(f"/p/{project.slug}/sets/freezing/{lost.pk}/").content.decode()
    assert "No worker finished it within 30 minutes" in page
    assert not PreferenceSet.objects.exists()
