"""Live production feedback (annotation/services/production.py): the intake endpoint's token scope,
idempotency, limits, validation, scrubbing and sampling, and what kept feedback turns into."""
from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from annotation.models import Item, ItemKind, ProductionFeedback, Prompt, Response, Role
from annotation.security import FeedbackThrottle
from annotation.services.production import scrub
from annotation.services.queue import queue_next
from annotation.services.tokens import feedback_token_create, token_issue, token_revoke
from tests.factories import ProjectFactory, api_as, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    token, secret = feedback_token_create(project=project, lead=lead)
    return project, lead, token, secret


def product(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def flag(external_id: str = "fb-1", **kw) -> dict:
    body = {"external_id": external_id,
            "conversation": [{"role": "user", "content": f"How do I reset my password? ({external_id})"}],
            "answer": "Just delete your account and make a new one.",
            "signal": {"kind": "thumbs_down", "reason": "unhelpful"}, "domain": "support"}
    body.update(kw)
    return body


def url(project) -> str:
    return f"/api/projects/{project.slug}/production-feedback/"


def test_only_the_projects_feedback_token_posts_and_it_reaches_nothing_else(world):
    project, lead, token, secret = world
    assert APIClient().post(url(project), flag(), format="json").status_code == 401
    full_token, full_secret = token_issue(user=lead)  # the lead's own full token
    assert product(full_secret).post(url(project), flag(), format="json").status_code == 403
    assert api_as(lead).post(url(project), flag(), format="json").status_code == 403
    other = ProjectFactory()
    assert product(secret).post(url(other), flag(), format="json").status_code == 404
    elsewhere_token, elsewhere_secret = feedback_token_create(project=other, lead=member(other, Role.LEAD))
    assert product(elsewhere_secret).post(url(project), flag(), format="json").status_code == 404
    # The scoped token acts as its lead nowhere else.
    scoped = product(secret)
    for method, path in (("get", "/api/projects/"), ("get", f"/api/projects/{project.slug}/"),
                         ("get", f"/api/projects/{project.slug}/export/"), ("get", "/api/tokens/"),
                         ("get", f"/api/projects/{project.slug}/production-feedback/policy/"),
                         ("post", f"/api/projects/{project.slug}/production-feedback/tokens/")):
        assert getattr(scoped, method)(path).status_code == 403, path
    assert not ProductionFeedback.objects.exists()
    assert scoped.post(url(project), flag(), format="json").status_code == 201
    token_revoke(token=token)
    assert scoped.post(url(project), flag("fb-2"), format="json").status_code == 401


def test_bad_bodies_are_refused_whole_with_each_field_named_and_nothing_stored(world):
    project, lead, token, secret = world
    client = product(secret)
    bad = client.post(url(project), {"external_id": "", "conversation": [{"role": "bot", "content": "hi"}],
                                     "signal": {"kind": "meh"}, "colour": "red"}, format="json")
    assert bad.status_code == 422
    errors = bad.json()["errors"] if "errors" in bad.json() else bad.json()["field_errors"]
    assert {"external_id", "conversation.0", "answer", "signal", "colour"} <= set(errors)
    ends_with_assistant = flag(conversation=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
    assert client.post(url(project), ends_with_assistant, format="json").status_code == 422
    comment_without_words = flag(signal={"kind": "comment"})
    assert "signal.text" in str(client.post(url(project), comment_without_words, format="json").json())
    huge = flag(answer="x" * 70_000)
    assert client.post(url(project), huge, format="json").status_code == 413
    assert client.post(url(project), "[1, 2]", content_type="application/json").status_code in (400, 422)
    assert not ProductionFeedback.objects.exists() and not Item.objects.exists()


def test_a_retry_is_answered_with_the_first_result_and_another_body_under_the_same_id_is_a_conflict(world):
    project, lead, token, secret = world
    client = product(secret)
    first = client.post(url(project), flag(), format="json")
    assert first.status_code == 201 and first.json()["status"] == "kept" and first.json()["task"] == "rewrite"
    reordered = json.dumps(dict(reversed(list(flag().items()))))
    again = client.post(url(project), reordered, content_type="application/json")
    assert again.status_code == 200 and again.json() == first.json()
    changed = client.post(url(project), flag(answer="Another answer altogether."), format="json")
    assert changed.status_code == 409
    assert ProductionFeedback.objects.count() == 1 and Item.objects.count() == 1


def test_the_intake_is_rate_limited_per_token(world, monkeypatch):
    project, lead, token, secret = world
    monkeypatch.setattr(FeedbackThrottle, "THROTTLE_RATES", {"production_feedback": "3/min"})
    client = product(secret)
    codes = [client.post(url(project), flag(f"r-{i}"), format="json").status_code for i in range(4)]
    assert codes == [201, 201, 201, 429]
    assert ProductionFeedback.objects.count() == 3


@pytest.mark.parametrize("text, expected, rules", [
    ("Mail me at jane.doe+x@mail.example.co.uk please", "Mail me at [email] please", {"email": 1}),
    ("Card 4111 1111 1111 1111 was charged", "Card [card] was charged", {"card": 1}),
    ("Card 4111-1111-1111-1112 fails Luhn", "Card 4111-1111-1111-1112 fails Luhn", {}),
    ("Call +44 20 7946 0958 or (555) 123-4567", "Call [phone] or [phone]", {"phone": 2}),
    ("On 2024-01-15 at 10:30 it cost $1,299.99 (order 12345)", "On 2024-01-15 at 10:30 it cost $1,299.99 (order 12345)",
     {}),
])
def test_the_scrub_rules(text, expected, rules):
    scrubbed, found = scrub(text)
    assert scrubbed == expected and dict(found) == rules


def test_personal_data_is_scrubbed_everywhere_before_anything_is_stored(world):
    project, lead, token, secret = world
    body = flag("pii", conversation=[{"role": "system", "content": "Support bot."},
                                     {"role": "user", "content": "I'm bob@example.com, card 5555 5555 5555 4444"}],
                answer="Thanks bob@example.com, we will call +1 415 555 2671.",
                signal={"kind": "comment", "text": "It read my number 4111111111111111 back!"},
                reference_answer="Please never share card numbers here.",
                metadata={"user": {"email": "bob@example.com", "tags": ["vip", "phone 020 7946 0958 1"]}})
    answer = product(secret).post(url(project), body, format="json").json()
    assert answer["scrubbed"] == {"email": 3, "card": 2, "phone": 2}
    stored = json.dumps([list(ProductionFeedback.objects.values()), list(Prompt.objects.values("messages")),
                         list(Response.objects.values("text", "metadata"))], default=str)
    for secret_text in ("bob@example.com", "5555 5555 5555 4444", "4111111111111111", "415 555 2671", "7946 0958"):
        assert secret_text not in stored
    assert "[email]" in stored and "[card]" in stored and "[phone]" in stored


def test_sampling_rules_each_name_their_drops(world):
    project, lead, token, secret = world
    client = api_as(lead)
    policy = client.patch(f"/api/projects/{project.slug}/production-feedback/policy/",
                          {"keep_share": 0.5, "daily_cap": 1000, "domain_daily_cap": 1000}, format="json")
    assert policy.status_code == 200
    feed = product(secret)
    statuses = [feed.post(url(project), flag(f"s-{i}"), format="json").json() for i in range(200)]
    kept = sum(1 for s in statuses if s["status"] == "kept")
    assert 70 <= kept <= 130  # binomial(200, 0.5): outside this, p < 1e-4
    assert {s["dropped_by"] for s in statuses if s["status"] == "dropped"} == {"sample"}
    # The decision follows the id: a replay decides the same.
    assert feed.post(url(project), flag("s-0"), format="json").json()["status"] == statuses[0]["status"]
    client.patch(f"/api/projects/{project.slug}/production-feedback/policy/",
                 {"keep_share": 1.0, "daily_cap": kept + 2, "domain_daily_cap": 1000}, format="json")
    duplicate = flag("dup", conversation=[{"role": "user", "content": "HOW do I reset my password?? (s-1)"}])
    first_kept = next(i for i, s in enumerate(statuses) if s["status"] == "kept")
    duplicate["conversation"][0]["content"] = f"how do I RESET my password (s-{first_kept})!"
    assert feed.post(url(project), duplicate, format="json").json()["dropped_by"] == "duplicate"
    assert feed.post(url(project), flag("new-1"), format="json").json()["status"] == "kept"
    client.patch(f"/api/projects/{project.slug}/production-feedback/policy/", {"domain_daily_cap": kept + 1},
                 format="json")
    assert feed.post(url(project), flag("new-2"), format="json").json()["dropped_by"] == "domain_cap"
    assert feed.post(url(project), flag("new-3", domain="billing"), format="json").json()["status"] == "kept"
    assert feed.post(url(project), flag("new-4", domain="billing"), format="json").json()["dropped_by"] == "daily_cap"
    intake = client.get(f"/api/projects/{project.slug}/production-feedback/policy/").json()["intake"]
    assert intake["received"] == 205 and intake["kept"] == kept + 2
    assert intake["dropped"] == {"sample": 200 - kept, "duplicate": 1, "daily_cap": 1, "domain_cap": 1}
    assert intake["tasks"] == {"rewrite": kept + 2, "comparison": 0}


def test_kept_feedback_becomes_live_work_with_source_production(world):
    project, lead, token, secret = world
    feed = product(secret)
    rewrite = feed.post(url(project), flag("rw"), format="json").json()
    compare = feed.post(url(project), flag("cmp", reference_answer="Use 'Forgot password' on the login page."),
                        format="json").json()
    assert (rewrite["task"], compare["task"]) == ("rewrite", "comparison")
    items = {i.kind: i for i in Item.objects.select_related("prompt", "response_a", "response_b")}
    assert set(items) == {ItemKind.REWRITE, ItemKind.COMPARISON}
    assert {i.prompt.source for i in items.values()} == {"production"}
    comparison = items[ItemKind.COMPARISON]
    assert comparison.in_live_queue and comparison.target_judgments == project.overlap
    assert comparison.response_a.metadata["production_feedback"] == "cmp"
    annotator = member(project)
    for _ in range(2):  # what annotators are shown carries neither the feedback's id nor its signal
        shown = api_as(annotator).post(f"/api/projects/{project.slug}/next/").json()
        assert shown["kind"] in ("rewrite", "comparison")
        for hidden in ("production_feedback", "thumbs_down", "unhelpful", "reference"):
            assert hidden not in str(shown), hidden
        api_as(annotator).post(f"/api/assignments/{shown['assignment']}/skip/")
    assert queue_next(project=project, annotator=annotator) is None


@pytest.mark.parametrize("who", ["annotator", "engineer"])
def test_only_leads_see_the_intake_set_the_policy_and_issue_tokens(world, who):
    project, lead, token, secret = world
    person = member(project, Role.ANNOTATOR if who == "annotator" else Role.ENGINEER)
    client = api_as(person)
    base = f"/api/projects/{project.slug}/production-feedback/"
    assert client.get(base + "policy/").status_code == 403
    assert client.patch(base + "policy/", {"keep_share": 0.1}, format="json").status_code == 403
    assert client.post(base + "tokens/").status_code == 403
    bad = api_as(lead).patch(base + "policy/", {"keep_share": 2, "daily_cap": -1}, format="json")
    assert bad.status_code in (400, 422)
    made = api_as(lead).post(base + "tokens/")
    assert made.status_code == 201 and product(made.json()["secret"]).post(base, flag("t"), format="json").status_code == 201


def test_a_lead_sets_the_policy_issues_a_token_and_reads_the_intake_on_the_pages(world, client):
    project, lead, token, secret = world
    client.force_login(lead)
    saved = client.post(f"/p/{project.slug}/settings/feedback/", {"keep_share": "0.25", "daily_cap": "10",
                                                                 "domain_daily_cap": "5", "dedupe": "on"})
    assert saved.status_code == 302
    policy = api_as(lead).get(f"/api/projects/{project.slug}/production-feedback/policy/").json()["policy"]
    assert policy == {"keep_share": 0.25, "daily_cap": 10, "domain_daily_cap": 5, "dedupe": True}
    refused = client.post(f"/p/{project.slug}/settings/feedback/", {"keep_share": "3", "daily_cap": "1",
                                                                   "domain_daily_cap": "1"}, follow=True)
    assert "keep_share" in refused.content.decode()
    issued = client.post(f"/p/{project.slug}/settings/feedback/token/", {"name": "shop backend"})
    assert issued.status_code == 200 and issued["Cache-Control"] == "no-store"
    page = issued.content.decode()
    new_secret = page.split('id="feedback-secret">')[1].split("<code>")[1].split("</code>")[0]
    product(new_secret).post(url(project), flag("page-1", answer="Mail admin@example.org for it."), format="json")
    overview = client.get(f"/p/{project.slug}/lead/").content.decode()
    assert 'id="intake-table"' in overview and "1 email" in overview and "admin@example.org" not in overview


@pytest.mark.parametrize("text, expected", [
    ("4111.1111.1111.1111", "[card]"),
    ("4111 1111 1111 1111 123", "[card] 123"),
    ("4111111111111111 12/25", "[card] 12/25"),
    ("Amex 3782 822463 10005", "Amex [card]"),
    ("555-123-4567 555-987-6543", "[phone] [phone]"),
    ("josé@example.com wrote", "[email] wrote"),
    ("2024-01-15 10:30", "2024-01-15 10:30"),
    ("from 192.168.100.200", "from 192.168.100.200"),
])
def test_the_scrub_rules_on_the_shapes_people_write(text, expected):
    assert scrub(text)[0] == expected


def test_a_hostile_body_scrubs_without_backtracking():
    """Every quantifier in the rules is bounded: 60 KB of one character, of digits, or of
    near-addresses is scrubbed whole (a hang here would hold a web process)."""
    for blob in ("a" * 60_000, "1" * 60_000, "a." * 30_000 + "@x", "1-" * 30_000, "+(" * 30_000):
        scrubbed, _ = scrub(blob)
        assert len(scrubbed) <= len(blob) + 10


def test_identifiers_may_not_carry_free_text_and_a_top_level_reason_is_refused(world):
    project, lead, token, secret = world
    answer = product(secret).post(url(project), flag("jane@example.com-42", reason="misplaced",
                                                     model_name="gpt 4 <b>", domain="Support desk"), format="json")
    assert answer.status_code == 422
    errors = str(answer.json())
    for field in ("external_id", "reason", "model_name", "domain"):
        assert field in errors, field
    assert not ProductionFeedback.objects.exists()


def test_a_token_stops_when_its_lead_is_no_longer_a_lead(world):
    from annotation.models import Membership

    project, lead, token, secret = world
    Membership.objects.filter(project=project, user=lead, role=Role.LEAD).delete()
    Membership.objects.create(project=project, user=lead, role=Role.ENGINEER)
    refused = product(secret).post(url(project), flag("after"), format="json")
    assert refused.status_code == 403 and "no longer a lead" in refused.json()["detail"]


def test_the_feedback_token_opens_no_page(world, client):
    """Pages authenticate by session only: the token gets the login page, never the lead's pages."""
    project, lead, token, secret = world
    for path in (f"/p/{project.slug}/lead/", f"/p/{project.slug}/settings/", f"/p/{project.slug}/export/"):
        answer = client.get(path, HTTP_AUTHORIZATION=f"Bearer {secret}")
        assert answer.status_code == 302 and "/accounts/login/" in answer["Location"], path
