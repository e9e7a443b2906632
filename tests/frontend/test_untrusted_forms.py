"""Untrusted form posts, as the people who use the pages see them: a bad time spent or a NUL is a
field error (422), never a 500 or a DataError; the page takes time spent exactly as the API does;
a rationale of invisible characters is too short; an alert of another project is 404; CSV cells
that a spreadsheet would read as a formula are neutralised. Real PostgreSQL."""
from __future__ import annotations

import csv
import io
import uuid

import pytest
from django.test import Client
from rest_framework.exceptions import ValidationError as DRFValidationError

from annotation.errors import ValidationFailed
from annotation.models import AdversarialNegative, Judgment, RankingJudgment, Rewrite, Role
from annotation.serializers import TimeSpentField
from annotation.services.judgments import JudgmentInput, judgment_validate
from annotation.services.negatives import NegativeInput, negative_validate
from annotation.services.rankings import RankingInput, ranking_validate
from annotation.services.rewrites import RewriteInput, rewrite_return, rewrite_submit, rewrite_validate
from annotation.untrusted import MAX_TIME_SPENT_MS, visible_length
from calibration.analytics_tables import table_csv
from calibration.models import StandingChange
from calibration.services.queue import question_next
from annotation.services.queue import queue_next
from calibration.services.standing import standing_override
from frontend.access import time_spent_ms
from tests.factories import api_as, submit_payload
from tests.factories import (
    ItemFactory, ProjectFactory, adversarial_line, bad_case_line, import_lines, make_anchor, member, ranking_line,
)

INVISIBLE = [
    "\u200b" * 30,  # zero-width space
    "\u200c\u200d\u200e\u200f" * 8,  # zero-width (non-)joiners, direction marks
    "\u2060\u2061\u2062\u2063\u2064" * 6,  # word joiner, invisible operators
    "\ufeff" * 30,  # byte-order mark
    "\u202a\u202b\u202c\u202d\u202e" * 6,  # bidi embeddings and overrides
    "\u2066\u2067\u2068\u2069" * 8,  # bidi isolates
    "\u00a0\u2003\u3000 \t\n" * 6,  # spaces of every width
    "\u0301\u0336" * 15,  # combining marks with nothing to sit on
    "\u3164\u115f\u2800" * 10,  # Hangul fillers, braille blank
]


def page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def assignment_url(project, assignment, action: str) -> str:
    """The page URL of an action on an assignment (by its opaque handle): one place to change."""
    return f"/p/{project.slug}/label/{assignment.handle}/{action}/"


def api_assignment_url(assignment, action: str) -> str:
    return f"/api/assignments/{assignment.handle}/{action}/"


# ---------------------------------------------------------------- time spent: one rule


RAW_TIMES = ["", "0", "4200", "4200.0", " 42 ", "+7", str(MAX_TIME_SPENT_MS), str(MAX_TIME_SPENT_MS + 1),
             str(2**31), "-1", "inf", "-inf", "Infinity", "nan", "1e30", "1e3", "4200.5", "abc", "9" * 5000,
             "\u0664\u0662", "0x10", "4_200"]


@pytest.mark.parametrize("raw", RAW_TIMES)
def test_the_page_takes_time_spent_exactly_as_the_api_does(raw):
    try:
        api = ("ok", TimeSpentField().run_validation(raw))
    except DRFValidationError as exc:
        api = ("refused", str(exc.detail[0]))
    try:
        page = ("ok", time_spent_ms(raw))
    except ValidationFailed as exc:
        page = ("refused", exc.field_errors["time_spent_ms"])
    assert page == api
    if raw in ("inf", "1e30", str(2**31), "-1", "nan"):
        assert page[0] == "refused" and "from 0 to 86400000" in page[1]


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ["inf", "1e30", str(2**31), "-1", "NaN"])
def test_comparison_page_refuses_a_bad_time_spent_with_a_message_and_keeps_the_item(raw):
    project = ProjectFactory()
    ItemFactory(project=project)
    annotator = member(project)
    assignment = queue_next(project=project, annotator=annotator)
    client = page_client(annotator)
    form = {"client_token": str(uuid.uuid4()), "choice": "left", "strength": "clear",
            "rationale": "Left is accurate and concise.", "time_spent_ms": raw}
    response = client.post(assignment_url(project, assignment, "submit"), form)
    assert response.status_code == 422
    assert "Time spent must be a whole number of milliseconds" in response.content.decode()
    api = api_as(annotator).post(api_assignment_url(assignment, "submit"),
                                 submit_payload(time_spent_ms=raw), format="json")
    assert api.status_code == 400 and "time_spent_ms" in api.json()
    assert not Judgment.objects.exists()
    # The item is still the annotator's: the same form with a sane time goes through.
    assert client.post(assignment_url(project, assignment, "submit"), {**form, "time_spent_ms": "4200"}).status_code == 200
    assert Judgment.objects.get().time_spent_ms == 4200


@pytest.mark.django_db
def test_comparison_page_refuses_a_nul_in_the_rationale_with_a_field_error():
    project = ProjectFactory()
    ItemFactory(project=project)
    annotator = member(project)
    assignment = queue_next(project=project, annotator=annotator)
    response = page_client(annotator).post(assignment_url(project, assignment, "submit"), {
        "client_token": str(uuid.uuid4()), "choice": "left", "strength": "clear",
        "rationale": "Left is accurate\x00 and concise.", "time_spent_ms": "100"})
    assert response.status_code == 422
    assert "The rationale contains a NUL character (U+0000)" in response.content.decode()
    assert not Judgment.objects.exists()


DESIGNED = {
    "rank": (ranking_line("Rank these?", 3), RankingJudgment,
             {"order": "A>B>C", "rationale": "A is the most complete answer."}),
    "rewrite": (bad_case_line("Fix this?", "A wrong answer."), Rewrite,
                {"text": "A right answer.", "flaws": ["hallucination"], "rationale": "The original was wrong."}),
    "negative": (adversarial_line("Break this?", "A good answer."), AdversarialNegative,
                 {"text": "A good answer, confidently wrong.", "flaw_type": "confident_but_wrong",
                  "rationale": "The last clause is false."}),
}


@pytest.mark.django_db
@pytest.mark.parametrize("action", list(DESIGNED))
def test_designed_pages_refuse_bad_time_spent_and_nul_with_field_errors(action):
    line, model, good = DESIGNED[action]
    project = ProjectFactory()
    import_lines(project, [line])
    annotator = member(project)
    assignment = queue_next(project=project, annotator=annotator)
    client = page_client(annotator)
    url = assignment_url(project, assignment, action)
    base = {"client_token": str(uuid.uuid4()), **good}
    for raw in ("inf", "1e30", str(2**31)):
        response = client.post(url, {**base, "time_spent_ms": raw})
        assert response.status_code == 422, (raw, response.status_code)
        assert "Time spent must be a whole number of milliseconds" in response.content.decode()
    fields = ["rationale"] + (["text"] if "text" in good else [])
    for name in fields:
        response = client.post(url, {**base, name: good[name] + "\x00", "time_spent_ms": "100"})
        assert response.status_code == 422, name
        assert "contains a NUL character (U+0000)" in response.content.decode()
    assert not model.objects.exists()
    assert client.post(url, {**base, "time_spent_ms": "5000"}).status_code == 200
    assert model.objects.get().time_spent_ms == 5000


@pytest.mark.django_db
def test_calibration_answer_page_refuses_a_bad_time_spent_and_keeps_the_question():
    project = ProjectFactory()
    for choice in ("a", "b", "a", "b"):
        make_anchor(project, in_set=True, choice=choice)
    newcomer = member(project)
    question = question_next(project=project, annotator=newcomer)
    client = page_client(newcomer)
    url = f"/p/{project.slug}/label/calibration/{question.pk}/answer/"
    form = {"choice": "left", "strength": "clear", "rationale": "Left is accurate and concise."}
    response = client.post(url, {**form, "time_spent_ms": "1e30"})
    assert response.status_code == 422
    assert "Time spent must be a whole number of milliseconds" in response.content.decode()
    response = client.post(url, {**form, "rationale": "Left\x00 is accurate and concise.", "time_spent_ms": "9"})
    assert response.status_code == 422 and "NUL" in response.content.decode()
    assert question_next(project=project, annotator=newcomer).pk == question.pk  # still unanswered
    assert client.post(url, {**form, "time_spent_ms": "900"}).status_code == 200


@pytest.mark.django_db
def test_review_comment_with_a_nul_is_a_field_error():
    project = ProjectFactory()
    import_lines(project, [bad_case_line("Fix this?", "A wrong answer.")])
    expert, lead = member(project), member(project, Role.LEAD)
    assignment = queue_next(project=project, annotator=expert)
    rewrite, _ = rewrite_submit(assignment_id=assignment.pk, author=expert, client_token=uuid.uuid4(),
                                data=RewriteInput(text="A right answer.", flaws=["hallucination"],
                                                  rationale="The original was wrong."))
    with pytest.raises(ValidationFailed) as refused:
        rewrite_return(rewrite_id=rewrite.pk, reviewer=lead, comment="Fix\x00 it")
    assert "NUL" in refused.value.field_errors["comment"]
    assert Rewrite.objects.get(pk=rewrite.pk).status == "submitted"


# ---------------------------------------------------------------- visible characters


@pytest.mark.parametrize("text, visible", [
    ("hello world", 11), ("  hello \n\t  world  ", 11), ("cafe\u0301", 4), ("\U0001F600", 1),
    ("\u4e2d\u6587\u5b57", 3), ("\u202eabc\u202c", 3), ("a\u200bb\u200bc", 3), ("a\u200b \u200b \u3000b", 3),
    ("", 0), *[(text, 0) for text in INVISIBLE],
])
def test_visible_length_counts_what_a_reader_sees(text, visible):
    assert visible_length(text) == visible


@pytest.mark.django_db
@pytest.mark.parametrize("invisible", INVISIBLE, ids=[f"invisible{i}" for i in range(len(INVISIBLE))])
def test_a_rationale_of_invisible_characters_is_too_short_for_every_kind_of_work(invisible):
    project = ProjectFactory()  # min_rationale_chars = 10
    errors = [
        judgment_validate(project=project, data=JudgmentInput(choice="left", strength="clear", rationale=invisible)),
        ranking_validate(project=project, n=3, data=RankingInput(order="A>B>C", rationale=invisible))[1],
        rewrite_validate(project=project, original="bad", data=RewriteInput(text="good", flaws=["hallucination"],
                                                                            rationale=invisible)),
        negative_validate(project=project, good="good", data=NegativeInput(text="bad", flaw_type="confident_but_wrong",
                                                                           rationale=invisible)),
    ]
    for error in errors:
        assert error.get("rationale", "").startswith("Write at least 10 characters"), error
        assert "(0 so far)" in error["rationale"]


@pytest.mark.django_db
def test_invisible_padding_does_not_reach_the_minimum_on_the_page_or_the_api():
    project = ProjectFactory()
    ItemFactory.create_batch(2, project=project)
    annotator = member(project)
    padded = "Fine." + "\u200b\u2066\u202e" * 20  # 5 visible, 65 code points
    assignment = queue_next(project=project, annotator=annotator)
    page = page_client(annotator).post(assignment_url(project, assignment, "submit"), {
        "client_token": str(uuid.uuid4()), "choice": "left", "strength": "clear", "rationale": padded,
        "time_spent_ms": "100"})
    assert page.status_code == 422 and "(5 so far)" in page.content.decode()
    api = api_as(annotator).post(api_assignment_url(assignment, "submit"),
                                 submit_payload(rationale=padded), format="json")
    assert api.status_code == 422 and "(5 so far)" in api.json()["errors"]["rationale"]
    assert not Judgment.objects.exists()


# ---------------------------------------------------------------- alerts of another project


@pytest.mark.django_db
def test_acknowledging_an_alert_of_another_project_or_none_is_404():
    mine, theirs = ProjectFactory(), ProjectFactory()
    lead = member(mine, Role.LEAD)
    other_lead, other_annotator = member(theirs, Role.LEAD), member(theirs)
    standing_override(project=theirs, annotator=other_annotator, to_state="excluded", reason="Spam.", actor=other_lead)
    foreign = StandingChange.objects.filter(project=theirs).latest("pk")
    client = page_client(lead)
    for change_id in (foreign.pk, foreign.pk + 10_000, 2**40):
        response = client.post(f"/p/{mine.slug}/calibration/alerts/{change_id}/ack/")
        assert response.status_code == 404, change_id
    assert StandingChange.objects.get(pk=foreign.pk).acknowledged_at is None
    # The lead of that project still acknowledges it.
    assert page_client(other_lead).post(f"/p/{theirs.slug}/calibration/alerts/{foreign.pk}/ack/").status_code == 302
    assert StandingChange.objects.get(pk=foreign.pk).acknowledged_at is not None


# ---------------------------------------------------------------- CSV cells


def test_csv_cells_that_a_spreadsheet_reads_as_formulas_are_neutralised():
    hostile = [" =1+1", "\n=HYPERLINK(\"http://x\")", "\t=1", "\r+1", "  @SUM(A1)", " \r\n-2+3", "\u200b=1",
               "\u00a0+1", "=1", "+1", "-1", "@x", "\t", "\r"]
    harmless = ["normal text", "a=b", "1-2", "e-mail@x", "\nsecond line", " indented"]
    items = [{"item_id": i, "domain": "d", "anchor": False, "judgments": 1,
              "votes": {"a": 1, "b": 0, "tie": 0, "both_bad": 0}, "disagreement": 0.0, "prompt": prompt}
             for i, prompt in enumerate(hostile + harmless)]
    rows = list(csv.reader(io.StringIO(table_csv("contested", {"contested": {"items": items}}))))
    prompts = [row[-1] for row in rows[1:]]
    assert prompts[:len(hostile)] == ["'" + p for p in hostile]
    assert prompts[len(hostile):] == harmless
