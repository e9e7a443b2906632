"""Who may not call the designed-data endpoints and pages: every one, with the roles refused."""
from __future__ import annotations

import uuid

import pytest
from django.test import Client

from annotation.models import Role
from annotation.services.projects import skills_set
from annotation.services.rewrites import RewriteInput, rewrite_submit
from annotation.services.queue import queue_next
from tests.factories import ProjectFactory, adversarial_line, api_as, bad_case_line, import_lines, ranking_line
from tests.permissions import api_mismatches, page_mismatches, people_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    project = ProjectFactory(overlap=2)
    import_lines(project, [
        bad_case_line("Who wrote Hamlet?", "Dickens.", domain="legal"),
        bad_case_line("Who painted the Mona Lisa?", "Picasso.", domain="legal"),
        ranking_line("Rank", 3),
        adversarial_line("2+2?", "4."),
    ])
    # expert and reviewer: two annotators who will hold the domain's skill.
    people = people_of(project, expert=Role.ANNOTATOR, reviewer=Role.ANNOTATOR)
    skills_set(project=project, user=people["expert"], skills=["legal"])
    skills_set(project=project, user=people["reviewer"], skills=["legal"])
    open_ = {}
    assignment = queue_next(project=project, annotator=people["expert"])
    assert assignment.item.kind == "rewrite"
    rewrite, _ = rewrite_submit(assignment_id=assignment.pk, author=people["expert"], client_token=uuid.uuid4(),
                                data=RewriteInput(text="Shakespeare.", flaws=["hallucination"], rationale="Wrong author named."))
    open_["rewrite"] = queue_next(project=project, annotator=people["expert"])  # the second bad case
    open_["ranking"] = queue_next(project=project, annotator=people["reviewer"])  # skill-less items: a ranking
    return project, people, rewrite, open_


def test_api_refuses(world):
    project, people, rewrite, open_ = world
    slug = project.slug
    reviewer_assignment = open_["ranking"]
    cases = [
        ("post", f"/api/assignments/{reviewer_assignment.handle}/rank/", {"anonymous": 401, "annotator": 404, "lead": 404, "expert": 404}),
        ("post", f"/api/assignments/{open_['rewrite'].handle}/rewrite/", {"anonymous": 401, "annotator": 404, "lead": 404, "reviewer": 404}),
        ("post", f"/api/assignments/{reviewer_assignment.handle}/negative/", {"anonymous": 401, "annotator": 404, "lead": 404}),
        ("get", f"/api/projects/{slug}/rewrites/", {"anonymous": 401, "outsider": 404, "engineer": 403}),
        ("post", f"/api/rewrites/{rewrite.pk}/review/", {"anonymous": 401, "outsider": 404, "annotator": 404, "engineer": 404, "expert": 403}),
        ("put", f"/api/rewrites/{rewrite.pk}/", {"anonymous": 401, "outsider": 404, "annotator": 404, "lead": 404, "reviewer": 404}),
        ("get", f"/api/projects/{slug}/bad-cases/", {"anonymous": 401, "outsider": 404, "annotator": 403, "expert": 403}),
        ("post", f"/api/projects/{slug}/bad-cases/", {"anonymous": 401, "outsider": 404, "annotator": 403, "engineer": 403}),
        ("put", f"/api/projects/{slug}/skills/{people['annotator'].username}/", {"anonymous": 401, "outsider": 404, "annotator": 403, "engineer": 403, "expert": 403}),
        ("get", f"/api/projects/{slug}/designed/", {"anonymous": 401, "outsider": 404, "annotator": 403, "expert": 403}),
    ]
    assert [problem for method, url, refused in cases for problem in api_mismatches(people, method, url, refused)] == []


def test_reviewers_see_rewrites_of_their_skill_but_annotators_see_only_their_own(world):
    project, people, rewrite, _ = world
    url = f"/api/projects/{project.slug}/rewrites/"
    lead_rows = api_as(people["lead"]).get(url).json()["results"]
    assert [r["id"] for r in lead_rows] == [rewrite.pk] and lead_rows[0]["author"] == people["expert"].username
    reviewer_rows = api_as(people["reviewer"]).get(url).json()["results"]
    assert [r["id"] for r in reviewer_rows] == [rewrite.pk] and "author" not in reviewer_rows[0]  # blind to who wrote it
    assert api_as(people["expert"]).get(url).json()["results"] == []  # their own is not theirs to review
    own = api_as(people["expert"]).get(url, {"mine": "true"}).json()["results"]
    assert [r["id"] for r in own] == [rewrite.pk]
    assert api_as(people["reviewer"]).get(url, {"mine": "true"}).json()["results"] == []
    assert api_as(people["annotator"]).get(url).json()["results"] == []  # no skill: only their own (none)
    response = api_as(people["reviewer"]).post(f"/api/rewrites/{rewrite.pk}/review/", {"action": "approve"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "approved"


def test_annotators_never_see_other_annotators_rankings_or_rewrites_in_their_payload(world):
    project, people, _, open_ = world
    body = api_as(people["reviewer"]).post(f"/api/projects/{project.slug}/next/").json()
    assert body["kind"] == "ranking" and [r["label"] for r in body["responses"]] == ["A", "B", "C"]
    assert set(body["responses"][0]) == {"label", "text"}  # no ids, no model names, no ranks
    rewrite_body = api_as(people["expert"]).post(f"/api/projects/{project.slug}/next/").json()
    assert rewrite_body["kind"] == "rewrite" and set(rewrite_body["response"]) == {"text"}
    assert {f["key"] for f in rewrite_body["flaws"]} >= {"hallucination", "unsafe"}


PAGES = [
    ("/p/{slug}/rewrites/", {"anonymous": 302, "annotator": 403, "engineer": 403, "outsider": 404}),
    ("/p/{slug}/designed/", {"anonymous": 302, "annotator": 403, "expert": 403, "outsider": 404}),
    ("/p/{slug}/items/", {"anonymous": 302, "annotator": 403, "engineer": 403, "outsider": 404}),
]


@pytest.mark.parametrize("template, refused", PAGES)
def test_pages_refuse(world, template, refused):
    project, people, _, _ = world
    assert page_mismatches(people, "get", template.format(slug=project.slug), refused) == []


def test_htmx_posts_refuse(world):
    project, people, rewrite, open_ = world
    slug = project.slug
    posts = [
        (f"/p/{slug}/label/{open_['ranking'].handle}/rank/", {"annotator": 404, "lead": 403, "engineer": 403}),
        (f"/p/{slug}/label/{open_['rewrite'].handle}/rewrite/", {"annotator": 404, "reviewer": 404}),
        (f"/p/{slug}/label/{open_['rewrite'].handle}/diff/", {"annotator": 404}),
        (f"/p/{slug}/label/{open_['ranking'].handle}/negative/", {"annotator": 404}),
        (f"/p/{slug}/label/rewrites/{rewrite.pk}/revise/", {"annotator": 404, "reviewer": 404}),
        (f"/p/{slug}/rewrites/{rewrite.pk}/review/", {"annotator": 403, "engineer": 403, "outsider": 404}),
        (f"/p/{slug}/designed/bad-cases/", {"annotator": 403, "engineer": 403, "expert": 403}),
        (f"/p/{slug}/designed/skills/{people['annotator'].username}/", {"annotator": 403, "engineer": 403}),
    ]
    data = {"action": "approve", "response": "1", "skills": "x"}
    assert [problem for url, refused in posts
            for problem in page_mismatches(people, "post", url, {"anonymous": 302, **refused}, data)] == []
    # The expert cannot approve their own rewrite through the page either.
    client = Client()
    client.force_login(people["expert"])
    assert client.post(f"/p/{slug}/rewrites/{rewrite.pk}/review/", {"action": "approve"}).status_code in (403, 404)
