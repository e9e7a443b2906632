"""Hostile JSON request bodies: a body nested 100,000 deep (or with NaN, a 5,000-digit integer, a
NUL, a lone surrogate, or over 4 MiB) answers 400 on every API endpoint that reads one, and never
500 on any. The parser is set once (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES); these tests walk
the URLconf so a new endpoint is covered without being listed. Real PostgreSQL."""
from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.parsers import JSONParser
from rest_framework.views import APIView

from annotation.models import Membership, Role
from annotation.parsers import UntrustedJSONParser
from calibration.models import CalibrationPolicy
from annotation.services.queue import queue_next, queue_submit
from tests.factories import ItemFactory, ProjectFactory, api_as, good_input, make_anchor, member

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000
WRITE_METHODS = ("post", "put", "patch")
# Endpoints that never read a body: they answer as they would without one (never 500). The
# production-feedback intake reads one only for its scoped token, never for a person (tested with
# the token below).
NO_BODY = re.compile(
    r"/(next|calibration/next|analytics/refresh|skip|cancel|select|retry|production-feedback)/$"
)


def _routes(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def api_views() -> list[tuple[str, type[APIView]]]:
    views = []
    for route, pattern in _routes(get_resolver().url_patterns):
        cls = getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)
        if route.startswith("api/") and cls is not None and issubclass(cls, APIView):
            views.append((route, cls))
    return views


def test_every_api_view_parses_json_with_the_untrusted_parser():
    """No view brings back a plain JSONParser (json.loads: RecursionError, NaN, NUL into jsonb)."""
    for route, cls in api_views():
        for parser in cls.parser_classes:
            if issubclass(parser, JSONParser):
                assert issubclass(parser, UntrustedJSONParser), f"{route}: {parser.__name__}"


@pytest.fixture
def world():
    """A project where one user holds every role, with the rows the URLs name: an anchor, an open
    comparison assignment and a judgment (so views get past their lookups to the body)."""
    project = ProjectFactory()
    user = member(project, Role.LEAD)
    for role in (Role.ENGINEER, Role.ANNOTATOR):
        Membership.objects.create(project=project, user=user, role=role)
    ItemFactory.create_batch(3, project=project)
    anchor = make_anchor(project)
    CalibrationPolicy.objects.update_or_create(project=project, defaults={"hidden_rate": 0.0})
    done = queue_next(project=project, annotator=user)
    judgment = queue_submit(assignment_id=done.pk, annotator=user, data=good_input(), client_token=uuid.uuid4()).judgment
    open_assignment = queue_next(project=project, annotator=user)
    return {"project": project, "user": user, "anchor": anchor, "judgment": judgment, "assignment": open_assignment}


def _url(route: str, world: dict) -> str:
    ids = {"anchor_id": world["anchor"].pk, "judgment_id": world["judgment"].pk}
    url = "/" + route
    url = url.replace("<slug:slug>", world["project"].slug).replace("<str:username>", world["user"].username)
    url = url.replace("<str:handle>", world["assignment"].handle).replace("<str:table>", "agreement")
    return re.sub(r"<int:(\w+)>", lambda m: str(ids.get(m.group(1), 999_999)), url)


def test_a_body_nested_100000_deep_answers_400_on_every_write_endpoint_that_reads_one(world):
    client = api_as(world["user"])
    answered: dict[str, int] = {}
    for route, cls in api_views():
        for method in WRITE_METHODS:
            if not hasattr(cls, method):
                continue
            url = _url(route, world)
            response = getattr(client, method)(url, data=DEEP, content_type="application/json")
            answered[f"{method.upper()} {url}"] = response.status_code
            assert response.status_code < 500, (method, url, response.status_code)
            if response.status_code == 400:
                assert "nested deeper than 32 levels" in response.json()["detail"]
    # Every endpoint whose rows exist and that reads a body said 400; the others (a missing row:
    # 404; an upload: 415; no body read) said something else, never 500.
    parsed = {k for k, v in answered.items() if v == 400}
    skipped = {k: v for k, v in answered.items() if v != 400}
    for key, status in skipped.items():
        assert status in (404, 415) or NO_BODY.search(key.split(" ", 1)[1]), (key, status)
    assert len(parsed) >= 18, parsed
    print(f"\ndeep body: {len(parsed)} endpoints answered 400; others: {sorted(skipped.items())}")


HOSTILE_BODIES = {
    "NaN": '{"text": "spec", "x": NaN}',
    "Infinity": '{"text": "spec", "x": [Infinity]}',
    "overflow": '{"text": "spec", "x": 1e400}',
    "5000 digits": '{"text": "spec", "x": ' + "9" * 5000 + "}",
    "NUL": '{"text": "spec\\u0000"}',
    "NUL key": '{"text": "spec", "\\u0000": 1}',
    "lone surrogate": '{"text": "spec\\ud800"}',
    "over 4 MiB": '{"text": "' + "x" * (4 * 1024 * 1024) + '"}',
    "not UTF-8": b'{"text": "\xff"}',
    "nested objects": '{"x":' * 50_000 + "1" + "}" * 50_000,
}


@pytest.mark.parametrize("case", list(HOSTILE_BODIES))
def test_hostile_json_bodies_answer_400_and_change_nothing(world, case):
    project, client = world["project"], api_as(world["user"])
    project.refresh_from_db()
    before = project.current_spec_id
    for method, url in (("post", f"/api/projects/{project.slug}/spec/"),
                        ("patch", f"/api/projects/{project.slug}/calibration/policy/"),
                        ("post", f"/api/assignments/{world['assignment'].handle}/submit/")):
        response = getattr(client, method)(url, data=HOSTILE_BODIES[case], content_type="application/json")
        assert response.status_code == 400, (case, url, response.status_code)
        assert response.json()["detail"].startswith("JSON parse error - ")
    project.refresh_from_db()
    assert project.current_spec_id == before


def test_json_typed_into_the_analytics_settings_form_is_parsed_as_untrusted(world):
    """The one page that reads JSON from a form field uses the same loader: a deep value is a
    message on the page, not a 500."""
    client = Client()
    client.force_login(world["user"])
    response = client.post(f"/p/{world['project'].slug}/analytics/policy/",
                           {"domain_targets": DEEP}, follow=True)
    assert response.status_code == 200
    assert "nested deeper than 32 levels" in response.content.decode()


def test_the_feedback_intake_answers_a_deep_body_from_its_token_with_400():
    from rest_framework.test import APIClient

    from annotation.models import ProductionFeedback, Role
    from annotation.services.tokens import feedback_token_create

    project = ProjectFactory()
    _token, secret = feedback_token_create(project=project, lead=member(project, Role.LEAD))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    url = f"/api/projects/{project.slug}/production-feedback/"
    assert client.post(url, DEEP, content_type="application/json").status_code == 413  # over its 64 KB first
    deep_but_small = "[" * 20_000 + "]" * 20_000
    assert client.post(url, deep_but_small, content_type="application/json").status_code == 400
    assert not ProductionFeedback.objects.exists()

