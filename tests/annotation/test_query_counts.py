"""SQL statements per labelling request, counted (a behaviour, not a timing): the hot path's
budget is 6 for a next and 6 for a submit in steady state, over real token authentication,
membership, the calibration gate, hidden gold, standing and routing, and transaction statements
(BEGIN/COMMIT) included. A hidden anchor costs the same statements as a live item: a count that
differs would be a timing leak (bench/hidden_gold_timing.py measures the time itself)."""
from __future__ import annotations

import uuid
from unittest import mock

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from annotation.after_response import AfterResponse
from annotation.models import Role
from annotation.services.tokens import token_issue
from calibration.models import CalibrationPolicy
from tests.factories import ItemFactory, ProjectFactory, make_anchor, member

pytestmark = pytest.mark.django_db(transaction=True)

BUDGET = {"next": 6, "submit": 6}


@pytest.fixture
def labelling(settings):
    settings.ALLOWED_HOSTS = ["*"]
    project = ProjectFactory(overlap=3)
    ItemFactory.create_batch(30, project=project)
    anchors = [make_anchor(project) for _ in range(6)]  # hidden gold, in the live queue's shadow
    annotator = member(project, Role.ANNOTATOR)
    _, secret = token_issue(user=annotator, name="counted")
    client = Client(HTTP_AUTHORIZATION=f"Token {secret}")
    return project, anchors, client


def _cycle(client, slug: str, choice: str = "left") -> dict:
    """One next and one submit through the whole stack; the statements of each, and what was served."""
    with CaptureQueriesContext(connection) as next_sql:
        served = client.post(f"/api/projects/{slug}/next/")
    assert served.status_code == 200, served.content
    handle = served.json()["assignment"]
    body = {"choice": choice, "strength": "clear" if choice in ("left", "right") else "",
            "rationale": "Left answers the question asked.",
            "client_token": str(uuid.uuid4())}
    sent_at: list[int] = []  # statements captured when the response was sent (close() began)
    real_attach = AfterResponse.attach

    def attach_and_mark(self, response):
        response = real_attach(self, response)
        after = response.close

        def close():
            sent_at.append(len(submit_sql.captured_queries))
            after()

        response.close = close
        return response

    with CaptureQueriesContext(connection) as submit_sql, mock.patch.object(AfterResponse, "attach", attach_and_mark):
        answer = client.post(f"/api/assignments/{handle}/submit/", body, content_type="application/json")
    assert answer.status_code == 201, answer.content
    submitted = [q["sql"] for q in submit_sql.captured_queries]
    cut = sent_at[0] if sent_at else len(submitted)
    # Work deferred until after the response (hidden-gold scoring) does not delay the annotator.
    return {"next": [q["sql"] for q in next_sql.captured_queries], "submit": submitted[:cut], "after": submitted[cut:]}


def _hidden_rate(project, rate: float, reask_rate: float = 0.0) -> None:
    """Hidden gold at `rate`; swapped re-asks off unless asked for (a random draw of either would
    make a count vary from run to run)."""
    CalibrationPolicy.objects.update_or_create(project=project, defaults={"hidden_rate": rate,
                                                                           "reask_rate": reask_rate})


def _steady(client, slug: str) -> dict:
    _cycle(client, slug)  # first contact: standing made, token's last use written, leases swept
    return _cycle(client, slug)


def test_next_and_submit_stay_within_the_statement_budget(labelling):
    project, _, client = labelling
    _hidden_rate(project, 0.0)
    counted = _steady(client, project.slug)
    for kind in ("next", "submit"):
        statements = counted[kind]
        assert len(statements) <= BUDGET[kind], f"{kind}: {len(statements)} statements\n" + "\n".join(statements)
    print(f"\n[queries] live item: next {len(counted['next'])}, submit {len(counted['submit'])}")


def test_a_hidden_anchor_costs_the_same_statements_as_a_live_item(labelling):
    project, anchors, client = labelling
    _hidden_rate(project, 0.0)
    live = _steady(client, project.slug)
    _hidden_rate(project, 1.0)  # every draw is gold while anchors and live work remain
    gold = _cycle(client, project.slug)
    from annotation.models import Judgment

    assert Judgment.objects.filter(item__in=[a.item for a in anchors]).count() == 1, "the second cycle served gold"
    for kind in ("next", "submit"):
        assert len(gold[kind]) == len(live[kind]), (kind, gold[kind], live[kind])
        assert len(gold[kind]) <= BUDGET[kind]
    assert gold["after"] and not live["after"], "the anchor was scored, after its response had gone out"


def test_a_swapped_reask_costs_the_same_statements_as_a_live_item(labelling, monkeypatch):
    """A re-ask (calibration/services/reasks.py) is served by the same lease statement and
    submitted through the same claim: the same count as a live item, before the response goes out."""
    from annotation.models import Judgment
    from calibration.services import queue as calibration_queue
    from calibration.services import reasks

    project, _, client = labelling
    _hidden_rate(project, 0.0)
    for _ in range(11):
        live = _cycle(client, project.slug)
    annotator = Judgment.objects.filter(project=project).first().annotator
    planned = reasks.reask_plan(project_id=project.pk, annotator_id=annotator.pk)
    assert planned is not None
    _hidden_rate(project, 0.0, reask_rate=0.3)
    monkeypatch.setattr(reasks._rng, "random", lambda: 1.0)  # plan no further re-ask
    monkeypatch.setattr(calibration_queue._rng, "random", lambda: 0.0)  # the serving draw asks for one
    again = _cycle(client, project.slug)
    assert Judgment.objects.filter(item=planned, reask_of=planned.reask_of).count() == 1, "the re-ask was served"
    for kind in ("next", "submit"):
        assert len(again[kind]) == len(live[kind]), (kind, again[kind], live[kind])


def test_the_budget_test_fails_on_a_query_too_many(labelling, monkeypatch):
    """The count is real: one more lookup in the submit path is seen."""
    project, _, client = labelling
    _hidden_rate(project, 0.0)
    _cycle(client, project.slug)
    from annotation.services import queue

    real = queue.judgment_record

    def with_extra_lookup(**kwargs):
        project.__class__.objects.filter(pk=project.pk).exists()
        return real(**kwargs)

    monkeypatch.setattr(queue, "judgment_record", with_extra_lookup)
    assert len(_cycle(client, project.slug)["submit"]) == BUDGET["submit"] + 1



def test_on_postgresql_the_hot_path_statements_are_prepared_once_and_reused(labelling):
    """config/settings/base.py turns on server-side binding with a prepare threshold, so PostgreSQL
    stops planning the hot path's statements again (planning the candidate pick cost seven times
    running it). After a few labels the lease and the claim are prepared statements on this
    connection, and the token lookup too."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are a PostgreSQL setting")
    assert connection.settings_dict["OPTIONS"].get("server_side_binding") is True
    project, _, client = labelling
    # Live items only: a hidden anchor is leased by a statement of its own shape, and with two
    # shapes sharing four nexts neither might reach its third run (when it is prepared).
    _hidden_rate(project, 0.0)
    for _ in range(4):
        _cycle(client, project.slug)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("WITH picked AS" in text for text in prepared), ("the lease is prepared", [t[:80] for t in prepared])
    assert any("annotation_apitoken" in text for text in prepared), "the token lookup is prepared"
    assert any(text.startswith("SELECT") and 'FOR UPDATE OF "annotation_assignment"' in text
               for text in prepared), "the claim is prepared"


def test_a_both_bad_answer_reports_both_responses_in_four_statements_more(labelling):
    """A "both bad" answer reports its two responses inside the submit (each gets a bad case and a
    rewrite task): lock them, read their bad cases, insert the tasks, insert the cases. A fixed
    four statements whatever was reported before (one response at a time it was fourteen)."""
    from annotation.models import BadCase

    project, _, client = labelling
    _hidden_rate(project, 0.0)
    live = _steady(client, project.slug)
    both_bad = _cycle(client, project.slug, choice="both_bad")
    assert len(both_bad["submit"]) == len(live["submit"]) + 4, "\n".join(both_bad["submit"])
    assert BadCase.objects.filter(project=project).count() == 2
