"""Who may not call what. Every endpoint is listed with the roles refused."""
from __future__ import annotations

import uuid

import pytest
from django.test import Client

from annotation.models import Role
from annotation.services.judgments import judgment_submit
from annotation.services.queue import queue_next
from tests.factories import ItemFactory, ProjectFactory, api_as, good_input, make_anchor, submit_payload
from tests.permissions import (
    ANALYST_PAGE, LEAD_PAGE, LEADS_ONLY, READERS, api_mismatches, page_mismatches, people_of,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    project = ProjectFactory()
    ItemFactory.create_batch(4, project=project)
    people = people_of(project, other_annotator=Role.ANNOTATOR)  # the outsider: a lead elsewhere
    for who in ("annotator", "other_annotator"):
        user = people[who]
        assignment = queue_next(project=project, annotator=user)
        judgment_submit(assignment_id=assignment.pk, annotator=user, data=good_input(), client_token=uuid.uuid4())
    people["open"] = queue_next(project=project, annotator=people["other_annotator"])
    people["anchor"] = make_anchor(project)  # hidden gold, not a calibration set: nobody is gated
    return project, people


# Agreement and bias numbers show everyone's labels: never to annotators.
ANALYSTS = READERS

API_CASES = [
    # (method, url template, refused roles -> expected status)
    ("get", "/api/projects/{slug}/", {"anonymous": 401, "outsider": 404}),
    ("post", "/api/projects/{slug}/next/", {"anonymous": 401, "outsider": 404, "lead": 403, "engineer": 403}),
    ("get", "/api/projects/{slug}/export/", {"anonymous": 401, "outsider": 404, "annotator": 403}),
    ("post", "/api/projects/{slug}/imports/", {"anonymous": 401, "outsider": 404, "annotator": 403}),
    ("get", "/api/projects/{slug}/judgments/", {"anonymous": 401, "outsider": 404}),
    ("post", "/api/assignments/{open}/submit/", {"anonymous": 401, "annotator": 404, "lead": 404, "outsider": 404}),
    ("post", "/api/assignments/{open}/skip/", {"anonymous": 401, "annotator": 404, "lead": 404}),
    ("post", "/api/assignments/{open}/rubric/", {"anonymous": 401, "annotator": 404, "lead": 404, "outsider": 404}),
    ("get", "/api/projects/", {"anonymous": 401}),
    ("put", "/api/judgments/{theirs}/", {"anonymous": 401, "annotator": 404, "lead": 404, "engineer": 404}),
    ("get", "/api/imports/999999/", {"anonymous": 401, "annotator": 404}),
    ("post", "/api/projects/{slug}/spec/", {"anonymous": 401, "annotator": 403, "engineer": 403, "outsider": 404}),
    # calibration: an annotator's own
    ("get", "/api/projects/{slug}/calibration/", {"anonymous": 401, "outsider": 404, "lead": 403, "engineer": 403}),
    ("post", "/api/projects/{slug}/calibration/next/", {"anonymous": 401, "outsider": 404, "lead": 403, "engineer": 403}),
    ("post", "/api/calibration/questions/999999/answer/", {"anonymous": 401, "annotator": 404, "lead": 404}),
    # calibration: leads only
    ("get", "/api/projects/{slug}/calibration/policy/", LEADS_ONLY),
    ("patch", "/api/projects/{slug}/calibration/policy/", LEADS_ONLY),
    ("get", "/api/projects/{slug}/routing/", LEADS_ONLY),
    ("patch", "/api/projects/{slug}/routing/", LEADS_ONLY),
    ("get", "/api/projects/{slug}/routing/rm-scores/", LEADS_ONLY),
    # production feedback: only the project's scoped token posts; leads set the policy and issue tokens
    ("post", "/api/projects/{slug}/production-feedback/",
     {"anonymous": 401, "outsider": 403, "annotator": 403, "lead": 403, "engineer": 403}),
    ("get", "/api/projects/{slug}/production-feedback/policy/", LEADS_ONLY),
    ("patch", "/api/projects/{slug}/production-feedback/policy/", LEADS_ONLY),
    ("post", "/api/projects/{slug}/production-feedback/tokens/", LEADS_ONLY),
    ("post", "/api/projects/{slug}/routing/rm-scores/", LEADS_ONLY),
    ("post", "/api/projects/{slug}/calibration/set/", LEADS_ONLY),
    ("get", "/api/projects/{slug}/anchors/", LEADS_ONLY),
    ("post", "/api/projects/{slug}/anchors/", LEADS_ONLY),
    ("post", "/api/projects/{slug}/anchors/import/", LEADS_ONLY),
    ("get", "/api/projects/{slug}/anchors/{anchor}/", LEADS_ONLY),
    ("patch", "/api/projects/{slug}/anchors/{anchor}/", LEADS_ONLY),
    ("get", "/api/projects/{slug}/standings/", LEADS_ONLY),
    ("get", "/api/projects/{slug}/standings/history/", LEADS_ONLY),
    ("post", "/api/projects/{slug}/standings/{annotator}/", LEADS_ONLY),
    ("post", "/api/projects/{slug}/standings/{annotator}/recalibrate/", LEADS_ONLY),
    # analytics: leads and engineers read and refresh; only leads change the thresholds
    ("get", "/api/projects/{slug}/analytics/", ANALYSTS),
    ("post", "/api/projects/{slug}/analytics/refresh/", ANALYSTS),
    ("get", "/api/projects/{slug}/analytics/tables/annotators.csv", ANALYSTS),
    ("get", "/api/projects/{slug}/analytics/policy/", ANALYSTS),
    ("patch", "/api/projects/{slug}/analytics/policy/", LEADS_ONLY),
]


@pytest.mark.parametrize("method, template, refused", API_CASES)
def test_api_refuses(world, method, template, refused):
    project, people = world
    theirs = people["other_annotator"].judgments.get()
    url = template.format(slug=project.slug, open=people["open"].handle, theirs=theirs.pk,
                          anchor=people["anchor"].pk, annotator=people["annotator"].username)
    assert api_mismatches(people, method, url, refused) == []


def test_annotator_sees_only_their_own_judgments(world):
    project, people = world
    rows = api_as(people["annotator"]).get(f"/api/projects/{project.slug}/judgments/").json()["results"]
    assert [r["annotator"] for r in rows] == [people["annotator"].username]
    lead_rows = api_as(people["lead"]).get(f"/api/projects/{project.slug}/judgments/").json()["results"]
    assert len(lead_rows) == 2


def test_annotator_cannot_edit_another_annotators_judgment(world):
    project, people = world
    theirs = people["other_annotator"].judgments.get()
    response = api_as(people["annotator"]).put(f"/api/judgments/{theirs.pk}/", {"choice": "tie", "rationale": "overriding you now"}, format="json")
    assert response.status_code == 404


def test_next_item_payload_reveals_no_labels_models_or_canonical_sides(world):
    project, people = world
    body = api_as(people["annotator"]).post(f"/api/projects/{project.slug}/next/").json()
    assert set(body) == {"kind", "assignment", "lease_expires_at", "prompt", "left", "right"} and body["kind"] == "comparison"
    assert set(body["left"]) == {"text"}
    # The model names (the factories' m1, m2) appear nowhere but by chance inside the random handle.
    shown = {k: v for k, v in body.items() if k != "assignment"}
    assert "m1" not in str(shown) and "m2" not in str(shown)
    assert body["assignment"] not in ("m1", "m2")


PAGE_CASES = [
    ("/", {"anonymous": 302}),
    ("/p/{slug}/label/", {"anonymous": 302, "lead": 403, "engineer": 403, "outsider": 404}),
    ("/p/{slug}/lead/", {"anonymous": 302, "annotator": 403, "engineer": 403, "outsider": 404}),
    ("/p/{slug}/lead/imports/", {"anonymous": 302, "annotator": 403, "outsider": 404}),
    ("/p/{slug}/import/", {"anonymous": 302, "annotator": 403, "outsider": 404}),
    ("/p/{slug}/settings/", LEAD_PAGE),
    ("/p/{slug}/my-work/", {"anonymous": 302, "lead": 403, "engineer": 403, "outsider": 404}),
    ("/p/{slug}/export/", {"anonymous": 302, "annotator": 403, "outsider": 404}),
    ("/p/{slug}/calibration/", LEAD_PAGE),
    ("/p/{slug}/anchors/", LEAD_PAGE),
    ("/p/{slug}/anchors/new/?item={item}", LEAD_PAGE),
    ("/p/{slug}/anchors/{anchor}/", LEAD_PAGE),
    ("/p/{slug}/analytics/", ANALYST_PAGE),
    ("/p/{slug}/analytics/tables/annotators.csv", ANALYST_PAGE),
    ("/p/{slug}/analytics/annotators/{annotator}/", ANALYST_PAGE),
    ("/p/{slug}/analytics/progress/1/", ANALYST_PAGE),
]


@pytest.mark.parametrize("template, refused", PAGE_CASES)
def test_pages_refuse(world, template, refused):
    project, people = world
    url = template.format(slug=project.slug, anchor=people["anchor"].pk, item=people["open"].item_id,
                          annotator=people["annotator"].username)
    assert page_mismatches(people, "get", url, refused) == []


LEAD_POSTS = [
    "/p/{slug}/calibration/policy/", "/p/{slug}/calibration/{annotator}/override/",
    "/p/{slug}/calibration/{annotator}/recalibrate/", "/p/{slug}/calibration/alerts/1/ack/",
    "/p/{slug}/anchors/import/", "/p/{slug}/anchors/set/", "/p/{slug}/anchors/new/?item={item}",
    "/p/{slug}/anchors/{anchor}/", "/p/{slug}/analytics/policy/", "/p/{slug}/settings/",
    "/p/{slug}/settings/goals/{annotator}/", "/p/{slug}/settings/routing/", "/p/{slug}/settings/routing/rm-scores/",
    "/p/{slug}/settings/feedback/", "/p/{slug}/settings/feedback/token/",
]


@pytest.mark.parametrize("path", LEAD_POSTS)
def test_lead_posts_refuse_everyone_else(world, path):
    project, people = world
    url = path.format(slug=project.slug, annotator=people["annotator"].username, item=people["open"].item_id,
                      anchor=people["anchor"].pk)
    assert Client().post(url).status_code == 302
    for who, status in (("annotator", 403), ("engineer", 403), ("outsider", 404)):
        client = Client()
        client.force_login(people[who])
        assert client.post(url, {"state": "excluded", "reason": "x", "choice": "a"}).status_code == status, who


def test_calibration_answer_page_refuses_other_peoples_questions(world):
    project, people = world
    client = Client()
    client.force_login(people["annotator"])
    assert client.post(f"/p/{project.slug}/label/calibration/999999/answer/", {"choice": "left"}).status_code == 404


@pytest.mark.parametrize("path", ["/p/{slug}/label/next/", "/p/{slug}/lead/import/", "/p/{slug}/label/{open}/submit/",
                                  "/p/{slug}/label/{open}/skip/", "/p/{slug}/analytics/refresh/"])
def test_htmx_posts_refuse_annotators_of_other_roles_and_anonymous(world, path):
    project, people = world
    url = path.format(slug=project.slug, open=people["open"].handle)
    assert Client().post(url).status_code == 302
    refused = {"next": "engineer", "import": "annotator", "submit": "annotator", "skip": "annotator",
               "refresh": "annotator"}
    who = next(v for k, v in refused.items() if k in url)
    client = Client()
    client.force_login(people[who])
    assert client.post(url).status_code in (403, 404)


def test_a_valid_submit_on_someone_elses_lease_is_404_and_stores_nothing(world):
    """The submit claims its assignment by handle in its own locking query (no lookup first): a
    complete, valid body on another annotator's open lease must still find nothing, on the API and
    on the page, and leave their lease as it was."""
    from annotation.models import Assignment, Judgment

    project, people = world
    handle = people["open"].handle
    before = Judgment.objects.count()
    api = api_as(people["annotator"]).post(f"/api/assignments/{handle}/submit/", submit_payload(), format="json")
    page = Client()
    page.force_login(people["annotator"])
    shown = page.post(f"/p/{project.slug}/label/{handle}/submit/", submit_payload(), HTTP_HX_REQUEST="true")
    assert (api.status_code, shown.status_code) == (404, 404)
    assert Judgment.objects.count() == before
    assert Assignment.objects.get(handle=handle).status == "leased"


def test_htmx_post_without_csrf_token_is_refused(world):
    project, people = world
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["annotator"])
    assert client.post(f"/p/{project.slug}/label/next/").status_code == 403


def test_import_status_is_hidden_from_annotators(world, tmp_path, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from annotation.services.imports import import_job_create

    settings.MEDIA_ROOT = tmp_path
    project, people = world
    job = import_job_create(project=project, upload=SimpleUploadedFile("x.jsonl", b"{}\n"), created_by=people["lead"])
    assert api_as(people["annotator"]).get(f"/api/imports/{job.pk}/").status_code == 404
    client = Client()
    client.force_login(people["annotator"])
    assert client.get(f"/imports/{job.pk}/").status_code == 404


def test_only_leads_publish_the_spec(world):
    project, people = world
    url = f"/api/projects/{project.slug}/spec/"
    for who in ("annotator", "engineer"):
        assert api_as(people[who]).post(url, {"text": "# Mine now"}, format="json").status_code == 403
    assert api_as(people["outsider"]).post(url, {"text": "# x"}, format="json").status_code == 404
    created = api_as(people["lead"]).post(url, {"text": "# Rules v2"}, format="json")
    assert created.status_code == 201 and created.json()["version"] == 2
    client = Client()
    client.force_login(people["annotator"])
    assert client.post(f"/p/{project.slug}/lead/spec/", {"text": "# x"}).status_code == 403


def test_the_matrix_reports_every_wrong_status(world):
    """The helpers every permission test uses must fail when a status differs (a check that
    cannot fail is no check)."""
    project, people = world
    export = f"/api/projects/{project.slug}/export/"
    assert api_mismatches(people, "get", export, {"annotator": 200, "anonymous": 401}) == [
        f"annotator GET {export}: 403, expected 200"]
    lead_page = f"/p/{project.slug}/lead/"
    assert page_mismatches(people, "get", lead_page, {"annotator": 200}) == [
        f"annotator GET {lead_page}: 403, expected 200"]
