"""The calibration REST API end to end, as a client would use it."""
from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from annotation.models import Item, Role
from calibration.models import Anchor, Standing
from calibration.stats import wilson_interval
from tests.factories import ItemFactory, ProjectFactory, api_as, member, submit_payload

pytestmark = pytest.mark.django_db

LINE = '{"prompt": "Capital of France?", "responses": ["Paris.", "Lyon."], "domain": "general", "expert": {"choice": "a", "strength": "strong", "explanation": "Paris is the capital.", "calibration_set": true}}'


def test_lead_builds_a_calibration_set_and_an_annotator_takes_it_over_the_api(db):
    project = ProjectFactory()
    live = ItemFactory.create_batch(2, project=project)
    lead, annotator = member(project, Role.LEAD), member(project, Role.ANNOTATOR)
    as_lead = api_as(lead)

    bad = SimpleUploadedFile("a.jsonl", (LINE + "\n{not json}\n").encode())
    response = as_lead.post(f"/api/projects/{project.slug}/anchors/import/", {"file": bad}, format="multipart")
    assert response.status_code == 422 and response.json()["errors"][0]["line"] == 2
    assert not Anchor.objects.exists()
    good = SimpleUploadedFile("a.jsonl", (LINE + "\n" + LINE.replace("France", "Italy").replace("Paris.", "Rome.")).encode())
    assert as_lead.post(f"/api/projects/{project.slug}/anchors/import/", {"file": good}, format="multipart").json() == {"created": 2}

    created = as_lead.post(f"/api/projects/{project.slug}/anchors/", {
        "item": live[0].pk, "choice": "b", "strength": "slight", "explanation": "B cites the source.",
        "dimensions": {"accuracy": "b"}, "in_calibration_set": True}, format="json")
    assert created.status_code == 201
    assert Item.objects.get(pk=live[0].pk).in_live_queue is False
    unknown_dim = as_lead.post(f"/api/projects/{project.slug}/anchors/", {
        "item": live[1].pk, "choice": "a", "strength": "clear", "explanation": "x", "dimensions": {"vibes": "a"}}, format="json")
    assert unknown_dim.status_code == 422 and "dimensions.vibes" in unknown_dim.json()["errors"]

    bad_policy = as_lead.patch(f"/api/projects/{project.slug}/calibration/policy/", {"cusum_p0": 0.5, "cusum_p1": 0.2}, format="json")
    assert bad_policy.status_code == 422 and "cusum_p1" in bad_policy.json()["errors"]
    assert as_lead.patch(f"/api/projects/{project.slug}/calibration/policy/", {"hidden_rate": 0.2}, format="json").json()["hidden_rate"] == 0.2

    as_annotator = api_as(annotator)
    assert as_annotator.post(f"/api/projects/{project.slug}/next/").json()["standing"] == "calibrating"
    answered = 0
    while (q := as_annotator.post(f"/api/projects/{project.slug}/calibration/next/")).status_code == 200:
        body = q.json()
        assert set(body) == {"question", "round", "position", "total", "prompt", "left", "right"}
        assert "expert" not in str(body) and "Paris is the capital" not in str(body)
        reply = as_annotator.post(f"/api/calibration/questions/{body['question']}/answer/", submit_payload(choice="tie"), format="json")
        assert reply.status_code == 200 and reply.json()["feedback"]["explanation"]
        answered += 1
    assert answered == 3 and reply.json()["finished"] and reply.json()["state"] == "needs_retraining"
    mine = as_annotator.get(f"/api/projects/{project.slug}/calibration/").json()
    assert mine["state"] == "needs_retraining" and len(mine["missed"]) == 3

    rows = as_lead.get(f"/api/projects/{project.slug}/standings/").json()
    row = next(r for r in rows if r["annotator"] == annotator.username)
    assert (row["answered"], row["correct"]) == (3, 0)
    assert (row["wilson_low"], row["wilson_high"]) == pytest.approx(wilson_interval(0, 3))
    assert as_lead.post(f"/api/projects/{project.slug}/standings/{annotator.username}/", {"state": "active"}, format="json").status_code == 400
    change = as_lead.post(f"/api/projects/{project.slug}/standings/{annotator.username}/", {"state": "active", "reason": "Reviewed by hand"}, format="json").json()
    assert change["to_state"] == "active" and change["actor"] == lead.username
    history = as_lead.get(f"/api/projects/{project.slug}/standings/history/?annotator={annotator.username}").json()
    assert [h["cause"] for h in history] == ["override", "round_failed", "joined"]
    assert as_annotator.post(f"/api/projects/{project.slug}/next/").status_code == 200


def test_seed_demo_builds_every_standing_and_runs_twice(db):
    call_command("seed_demo")
    call_command("seed_demo")
    states = dict(Standing.objects.filter(project__slug="demo").values_list("annotator__username", "state"))
    assert states == {"annotator1": "active", "annotator2": "calibrating", "annotator3": "needs_retraining"}
    assert Anchor.objects.filter(project__slug="demo").count() == 34
    assert Anchor.objects.filter(project__slug="demo", in_calibration_set=True).count() == 20
    # The simulated pool's dashboard is ready and finds what was planted.
    from calibration.models import AnalyticsSnapshot

    snapshot = AnalyticsSnapshot.objects.get(project__slug="demo-pool")
    assert snapshot.status == "succeeded"
    flags = {r["username"].split("-")[1]: {f["kind"] for f in r["flags"]} for r in snapshot.payload["annotators"]}
    assert flags == {"expert": set(), "noisy": set(), "length": {"length"}, "position": {"position"},
                     "assertive": {"confidence"}, "formatting": {"formatting"}, "fast": {"speed"}}
    # The demo policy run: its checkpoint judged by people, once (the second seed adds nothing), and
    # the padding it learned found worse than the SFT baseline while the reward rose.
    from training.models import Run
    from training.services.human_suite import human_suite_report

    [run] = Run.objects.filter(project__slug="demo-pool", kind="grpo")
    report = human_suite_report(run=run)
    assert report["received"] == report["wanted"] == 16
    assert any(row["flagged"] for d in report["dimensions"] for row in d["rows"])


def test_lead_pages_show_standing_accuracy_and_anchor_agreement(db):
    from django.test import Client

    call_command("seed_demo")
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.get(username="lead"))
    page = client.get("/p/demo/calibration/").content.decode()
    assert 'data-annotator="annotator3"' in page and "Needs retraining" in page
    assert "Failed calibration round 1" in page  # the alert and the audit trail
    assert "<polyline" in page  # trend sparkline
    anchors = client.get("/p/demo/anchors/").content.decode()
    assert "Calibration set: 20 anchors" in anchors and 'id="anchor-table"' in anchors
    first_anchor = Anchor.objects.filter(project__slug="demo").order_by("id").first()
    form = client.get(f"/p/demo/anchors/{first_anchor.pk}/").content.decode()
    assert first_anchor.explanation.split(";")[0] in form
    # an edit without a reason is refused and keeps what was typed
    edited = client.post(f"/p/demo/anchors/{first_anchor.pk}/", {
        "choice": "a", "strength": "slight", "explanation": "Changed my mind.", "clear_cut": "on", "active": "on"})
    assert edited.status_code == 422 and "Changed my mind." in edited.content.decode()
    saved = client.post(f"/p/demo/anchors/{first_anchor.pk}/", {
        "choice": "a", "strength": "slight", "explanation": "Changed my mind.", "clear_cut": "on", "active": "on",
        "reason": "Second expert disagreed"})
    assert saved.status_code == 302
    first_anchor.refresh_from_db()
    assert first_anchor.revision == 2 and first_anchor.revisions.get().reason == "Second expert disagreed"
