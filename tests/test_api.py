"""The labelling API end to end: next, submit (idempotent), skip, edit, schema."""
from __future__ import annotations

import pytest

from annotation.models import Judgment
from tests.factories import api_as, submit_payload

pytestmark = pytest.mark.django_db


def test_next_submit_cycle_and_idempotent_retry(project, items, annotator):
    client = api_as(annotator)
    item = client.post(f"/api/projects/{project.slug}/next/").json()
    payload = submit_payload("right", "strong", dimensions={"safety": "left"})
    first = client.post(f"/api/assignments/{item['assignment']}/submit/", payload, format="json")
    retry = client.post(f"/api/assignments/{item['assignment']}/submit/", payload, format="json")
    assert (first.status_code, retry.status_code) == (201, 200)
    assert first.json()["id"] == retry.json()["id"]
    judgment = Judgment.objects.get()
    assert judgment.choice != judgment.shown_left and judgment.strength == "strong"
    assert judgment.dimension_choices == {"safety": judgment.shown_left}
    assert judgment.time_spent_ms == 4200


def test_invalid_submit_gets_422_with_field_messages(project, items, annotator):
    client = api_as(annotator)
    item = client.post(f"/api/projects/{project.slug}/next/").json()
    response = client.post(f"/api/assignments/{item['assignment']}/submit/", submit_payload("left", "", rationale="no"), format="json")
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"strength", "rationale"}
    bad_type = client.post(f"/api/assignments/{item['assignment']}/submit/", {"choice": "left"}, format="json")
    assert bad_type.status_code == 400 and "rationale" in bad_type.json()


def test_nothing_left_is_204(project, annotator):
    assert api_as(annotator).post(f"/api/projects/{project.slug}/next/").status_code == 204


def test_skip_then_next_gives_another_item(project, items, annotator):
    client = api_as(annotator)
    first = client.post(f"/api/projects/{project.slug}/next/").json()
    assert client.post(f"/api/assignments/{first['assignment']}/skip/").status_code == 204
    assert client.post(f"/api/projects/{project.slug}/next/").json()["assignment"] != first["assignment"]


def test_edit_own_judgment_via_api_keeps_history(project, items, annotator):
    client = api_as(annotator)
    item = client.post(f"/api/projects/{project.slug}/next/").json()
    jid = client.post(f"/api/assignments/{item['assignment']}/submit/", submit_payload(), format="json").json()["id"]
    edited = client.put(f"/api/judgments/{jid}/", {"choice": "both_bad", "rationale": "Both are wrong after all."}, format="json")
    assert edited.status_code == 200 and edited.json()["choice"] == "both_bad" and edited.json()["revision"] == 2
    assert Judgment.objects.get(pk=jid).revisions.count() == 1


def test_the_api_refuses_an_edit_after_the_projects_edit_window(project, items, annotator):
    from datetime import timedelta

    from django.utils import timezone

    client = api_as(annotator)
    item = client.post(f"/api/projects/{project.slug}/next/").json()
    jid = client.post(f"/api/assignments/{item['assignment']}/submit/", submit_payload(), format="json").json()["id"]
    Judgment.objects.filter(pk=jid).update(created_at=timezone.now() - timedelta(hours=project.edit_window_hours, minutes=1))
    late = client.put(f"/api/judgments/{jid}/", {"choice": "both_bad", "rationale": "Both are wrong after all."}, format="json")
    assert late.status_code == 403 and "edit window" in late.content.decode()
    assert Judgment.objects.get(pk=jid).revision == 1


def test_openapi_schema_and_docs_are_served(client, annotator):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/projects/{slug}/next/" in schema.content
    client.force_login(annotator)
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
    assert b"cdn" not in docs.content.lower()
