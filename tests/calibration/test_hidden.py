"""Hidden gold in the live queue: the rate, and that nothing the browser receives tells an anchor
from a live item."""
from __future__ import annotations

import json
import math
import re
import uuid

import pytest
from django.test import Client

from annotation.models import Assignment, Item, Role
from annotation.services.judgments import JudgmentInput
from calibration.models import AnchorResult, ResultContext
from calibration.services import queue as queue_module
from calibration.services.policy import policy_update
from annotation.services.queue import queue_next, queue_submit
from tests.factories import ItemFactory, ProjectFactory, api_as, make_anchor, member, submit_payload

from .helpers import label_live, run_round

pytestmark = pytest.mark.django_db


def test_interleave_rate_over_a_long_queue(db):
    project = ProjectFactory(overlap=1)
    ItemFactory.create_batch(450, project=project)
    for i in range(120):
        make_anchor(project, choice="ab"[i % 2])
    annotator = member(project, Role.ANNOTATOR)  # no calibration set: active at once
    served = hidden = 0
    while served < 400:
        assignment, _ = label_live(project, annotator, agree_with_expert=True)
        served += 1
        hidden += not assignment.item.in_live_queue
    # Each request is an independent draw at 10%: 40 expected, sd = 6. Four sd either side keeps
    # this test from ever flaking while still catching a rate that is off by half.
    sd = math.sqrt(400 * 0.1 * 0.9)
    assert 40 - 4 * sd <= hidden <= 40 + 4 * sd, hidden
    assert AnchorResult.objects.filter(annotator=annotator, context=ResultContext.HIDDEN).count() == hidden
    # never the same anchor twice
    anchor_items = Assignment.objects.filter(annotator=annotator, item__in_live_queue=False).values_list("item_id", flat=True)
    assert len(anchor_items) == len(set(anchor_items))


def test_rate_follows_the_project_setting(db):
    project = ProjectFactory(overlap=1)
    ItemFactory.create_batch(200, project=project)
    for _ in range(5):
        make_anchor(project)
    policy_update(project=project, changes={"hidden_rate": 0.0})
    annotator = member(project, Role.ANNOTATOR)
    kinds = [label_live(project, annotator)[0].item.in_live_queue for _ in range(60)]
    assert all(kinds)


def test_hidden_anchors_exclude_those_met_in_calibration(calibrated_project, newcomer, monkeypatch):
    project, in_set, hidden = calibrated_project
    run_round(project, newcomer, wrong=0)
    monkeypatch.setattr(queue_module._rng, "random", lambda: 0.0)  # always try an anchor first
    got = []
    while True:
        assignment, _ = label_live(project, newcomer, agree_with_expert=True)
        if assignment is None or assignment.item.in_live_queue:
            break
        got.append(assignment.item.anchor.pk)
    assert sorted(got) == sorted(a.pk for a in hidden)
    assert not set(got) & {a.pk for a in in_set}


def _normalise(text: str, texts: list[str], numbers: list[int]) -> str:
    for t in texts:
        text = text.replace(t, "<TEXT>")
    # tokens and times first: an id could also occur inside them
    text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)?", "<TIME>", text)
    text = re.sub(r'value="[0-9a-f-]{36}"', 'value="<TOKEN>"', text)
    text = re.sub(r"csrfmiddlewaretoken\" value=\"[^\"]+\"", "<CSRF>", text)
    # Ids only where one is written (a JSON value or a URL path), never bare digits: the page has
    # its own small numbers (strength keys, textarea rows) that an id may equal.
    for n in numbers:
        text = re.sub(rf'(":\s*)({n})(?=[",}}\s/])', r"\1<ID>", text)
        text = re.sub(rf"/{n}/", "/<ID>/", text)
    return text


def _fetch_as_browser(project, user, *, anchor: bool, monkeypatch):
    """What the browser receives for one item: the htmx page fragment, the API JSON and the
    submit answers, whichever kind of item it is."""
    monkeypatch.setattr(queue_module._rng, "random", lambda: 0.0 if anchor else 0.99)
    client = Client()
    client.force_login(user)
    html = client.post(f"/p/{project.slug}/label/next/")
    assignment = Assignment.objects.filter(annotator=user, status="leased").get()
    api = api_as(user).post(f"/api/projects/{project.slug}/next/")  # the same held lease, as JSON
    submit = api_as(user).post(f"/api/assignments/{assignment.handle}/submit/", submit_payload(), format="json")
    item = Item.objects.select_related("prompt", "response_a", "response_b").get(pk=assignment.item_id)
    assert item.in_live_queue is (not anchor)
    texts = [item.response_a.text, item.response_b.text] + [m["content"] for m in item.prompt.messages]
    texts.append(assignment.handle)  # opaque and random: differs per assignment, says nothing
    numbers = [assignment.pk, submit.json()["id"]]
    return {
        "html": _normalise(html.content.decode(), texts, numbers),
        "html_headers": sorted(k for k in html.headers if k.lower() not in ("content-length",)),
        "api": _normalise(json.dumps(api.json(), sort_keys=True), texts, numbers),
        "api_headers": sorted(k for k in api.headers if k.lower() not in ("content-length",)),
        "submit": _normalise(json.dumps(submit.json(), sort_keys=True), texts, numbers),
        "status": (html.status_code, api.status_code, submit.status_code),
        "raw": html.content.decode() + json.dumps(api.json()) + json.dumps(submit.json()),
    }


def test_anchor_and_live_item_look_the_same_to_the_browser(db, monkeypatch):
    project = ProjectFactory()
    ItemFactory.create_batch(3, project=project)
    secret = "EXPERT-EXPLANATION-7f3a"
    make_anchor(project, explanation=secret)
    # Two annotators at the same point of their work (nothing done yet), one per kind of item.
    first, second = member(project, Role.ANNOTATOR), member(project, Role.ANNOTATOR)
    live = _fetch_as_browser(project, first, anchor=False, monkeypatch=monkeypatch)
    gold = _fetch_as_browser(project, second, anchor=True, monkeypatch=monkeypatch)
    for key in ("html", "html_headers", "api", "api_headers", "submit", "status"):
        assert live[key] == gold[key], key
    assert secret not in gold["raw"]
    for word in ("anchor", "gold", "expert", "calibrat"):
        assert word not in gold["raw"].lower(), word
    # The annotator's own judgment list carries no item ids either.
    rows = api_as(second).get(f"/api/projects/{project.slug}/judgments/").json()["results"]
    assert len(rows) == 1 and all("item" not in r for r in rows)


def test_feedback_on_hidden_anchors_only_when_the_project_shows_it(db, monkeypatch):
    project = ProjectFactory()
    ItemFactory.create_batch(3, project=project)
    make_anchor(project, explanation="Because B invents a date.")
    make_anchor(project, explanation="Because B invents a date.")
    user = member(project, Role.ANNOTATOR)
    monkeypatch.setattr(queue_module._rng, "random", lambda: 0.0)
    a = queue_next(project=project, annotator=user)
    data = JudgmentInput(choice="left", strength="clear", rationale="Left one is right here.")
    assert queue_submit(assignment_id=a.pk, annotator=user, data=data, client_token=uuid.uuid4()).feedback is None
    policy_update(project=project, changes={"show_hidden_feedback": True})
    a = queue_next(project=project, annotator=user)
    assert not a.item.in_live_queue
    outcome = queue_submit(assignment_id=a.pk, annotator=user, data=data, client_token=uuid.uuid4())
    side = "Response A (left)" if outcome.judgment.shown_left == "b" else "Response B (right)"
    assert outcome.feedback["explanation"] == f"Because {side} invents a date."
    client = Client()
    client.force_login(user)
    monkeypatch.setattr(queue_module._rng, "random", lambda: 0.99)
    b = queue_next(project=project, annotator=user)
    assert b.item.in_live_queue
    page = client.post(f"/p/{project.slug}/label/{b.handle}/submit/", {**submit_payload(), "choice": "left"})
    assert "Because B invents a date." not in page.content.decode()  # live items never carry feedback


@pytest.mark.django_db(transaction=True)
def test_web_submit_scores_a_hidden_anchor_after_the_response(monkeypatch):
    project = ProjectFactory()
    ItemFactory.create_batch(2, project=project)
    make_anchor(project)
    make_anchor(project)
    user = member(project, Role.ANNOTATOR)
    monkeypatch.setattr(queue_module._rng, "random", lambda: 0.0)
    for via in ("api", "page"):
        assignment = queue_next(project=project, annotator=user)
        assert not assignment.item.in_live_queue
        if via == "api":
            response = api_as(user).post(f"/api/assignments/{assignment.handle}/submit/", submit_payload(), format="json")
            assert response.status_code == 201
        else:
            client = Client()
            client.force_login(user)
            response = client.post(f"/p/{project.slug}/label/{assignment.handle}/submit/", submit_payload())
            assert response.status_code == 200
        # The test client closes the response before handing it back, as a WSGI server does
        # after writing it: the deferred scoring has run by now.
        assert AnchorResult.objects.filter(judgment__assignment=assignment).count() == 1


def test_judgments_on_anchors_left_unscored_are_scored_by_the_sweep(db, monkeypatch):
    from annotation.services.judgments import judgment_submit
    from calibration.services.queue import hidden_answers_score_missing

    project = ProjectFactory()
    ItemFactory(project=project)  # anchors hide only among live work
    make_anchor(project)
    user = member(project, Role.ANNOTATOR)
    monkeypatch.setattr(queue_module._rng, "random", lambda: 0.0)
    assignment = queue_next(project=project, annotator=user)
    assert not assignment.item.in_live_queue
    # As if the process died between the response and the deferred scoring:
    judgment_submit(assignment_id=assignment.pk, annotator=user, client_token=uuid.uuid4(),
                    data=JudgmentInput(choice="left", strength="clear", rationale="Left is right here."))
    assert not AnchorResult.objects.exists()
    assert hidden_answers_score_missing() == 1
    assert AnchorResult.objects.filter(judgment__assignment=assignment).count() == 1
    assert hidden_answers_score_missing() == 0
