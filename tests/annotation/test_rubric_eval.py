"""Rubrics in the spec and the rubric-evaluation item kind: parsing with line numbers, a spec with
a broken rubric refused whole, the submit's checks (every check answered, a rationale, replays,
wrong kind, someone else's item), and what an annotator is shown (nothing about the answer's
origin)."""
from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from annotation.errors import Conflict, ValidationFailed
from annotation.models import Item, ItemKind, Prompt, Response, RubricAnswer, Role, SpecVersion
from annotation.rubrics import MAX_CHECKS, parse_rubrics
from annotation.selectors import assignment_payload
from annotation.services.queue import queue_next
from annotation.services.rubric_evals import RubricInput, RubricTask, rubric_items_create, rubric_submit
from tests.factories import ProjectFactory, api_as, member

pytestmark = pytest.mark.django_db

SPEC = """# How we judge

Be helpful.

## Rubric: Math
- States the final answer plainly.
- Shows the working
  that leads to it.
Some explanation that is not a check.
1. Uses the units of the question.

## Rubric
* Answers the question that was asked.

## Tone
- not a rubric: this list belongs to another heading
"""


def test_rubrics_parse_per_dimension_with_a_fallback_and_continuations():
    rubrics = parse_rubrics(SPEC)
    assert not rubrics.errors
    assert rubrics.for_dimension("math") == ["States the final answer plainly.", "Shows the working that leads to it.",
                                             "Uses the units of the question."]
    assert rubrics.for_dimension("MATH ") == rubrics.for_dimension("math")  # names are case- and space-blind
    assert rubrics.for_dimension("chat") == ["Answers the question that was asked."]  # the fallback
    assert rubrics.for_dimension("") == rubrics.for_dimension("general") == ["Answers the question that was asked."]
    assert parse_rubrics("# Spec\n- a list, no rubric").for_dimension("math") == []
    assert [r["dimension"] for r in rubrics.summary()] == ["math", "any other dimension"]


def test_examples_nested_points_and_odd_names_are_read_as_markdown_means_them():
    text = """## Rubric: math
- Gives the answer
  - with its unit
- Is short.

  An indented remark after a blank line is not part of a check.
```
## Rubric: math
- an example inside a code block
```
## Rubric: C#
- Compiles.
## Rubric: Code   Review ##
- Names the bug.
"""
    rubrics = parse_rubrics(text)
    assert not rubrics.errors
    assert rubrics.for_dimension("math") == ["Gives the answer with its unit", "Is short."]
    assert rubrics.for_dimension("c#") == ["Compiles."]
    assert rubrics.for_dimension("code review") == rubrics.for_dimension("Code  review") == ["Names the bug."]


@pytest.mark.parametrize("heading", ["## Rubrics", "## Rubric for math", "### rubric - math"])
def test_a_heading_that_looks_like_a_rubric_but_is_not_one_is_refused(heading):
    [(line, message)] = parse_rubrics(f"# Spec\n{heading}\n- a check").errors
    assert line == 2 and "Rubric: <dimension>" in message


@pytest.mark.parametrize("text, line, words", [
    ("# S\n\n## Rubric: math\nJust prose.\n## Next", 3, "no checks"),
    ("## Rubric: math\n- a\n## Rubric: Math\n- b", 3, "second rubric"),
    ("## Rubric: math\n" + "".join(f"- check {i}\n" for i in range(MAX_CHECKS + 1)), 1, f"keep it to {MAX_CHECKS}"),
    ("x\n## Rubric: math\n- " + "long " * 80, 3, "at most 300 characters"),
    ("## Rubric: " + "d" * 65 + "\n- a", 1, "at most 64"),
])
def test_a_broken_rubric_is_reported_with_its_line(text, line, words):
    errors = parse_rubrics(text).errors
    assert errors and errors[0][0] == line and words in errors[0][1]


def test_a_spec_with_a_broken_rubric_is_refused_whole_by_the_api_and_the_page(client):
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    before = SpecVersion.objects.filter(project=project).count()
    response = api_as(lead).post(reverse("api:spec-publish", args=[project.slug]),
                                 {"text": "# Spec\n\n## Rubric: math\n\n## Other"}, format="json")
    assert response.status_code in (400, 422) and "line 3" in str(response.json()).lower()
    client.force_login(lead)
    page = client.post(reverse("lead-spec", args=[project.slug]), {"text": "## Rubric: math\nno list"})
    assert page.status_code == 422 and "Line 1" in page.content.decode()
    assert SpecVersion.objects.filter(project=project).count() == before
    ok = client.post(reverse("lead-spec", args=[project.slug]), {"text": SPEC})
    assert ok.status_code == 200 and "math (3 checks)" in ok.content.decode()


def _rubric_item(project, *, checks=("Is correct.", "Is short."), text="The answer is 4.", raters=1):
    [item] = rubric_items_create(project=project, raters=raters, tasks=[RubricTask(
        messages=[{"role": "user", "content": "What is 2 + 2?"}], domain="math", text=text, dimension="math",
        checks=list(checks))])
    return item


def test_the_item_is_a_copy_of_the_prompt_and_shows_nothing_of_its_origin():
    project = ProjectFactory()
    item = _rubric_item(project)
    assert item.kind == ItemKind.RUBRIC and item.response_b is None and item.target_judgments == 1
    assert Prompt.objects.get(pk=item.prompt_id).source == "behaviour_suite"
    annotator = member(project)
    assignment = queue_next(project=project, annotator=annotator)
    payload = assignment_payload(assignment=assignment)
    assert set(payload) == {"kind", "assignment", "lease_expires_at", "prompt", "response", "dimension", "checks"}
    assert payload["checks"] == ["Is correct.", "Is short."] and payload["response"] == {"text": "The answer is 4."}


def test_submit_checks_every_answer_and_the_rationale_and_replays():
    project = ProjectFactory()
    item = _rubric_item(project)
    annotator = member(project)
    assignment = queue_next(project=project, annotator=annotator)
    token = uuid.uuid4()
    for answers, field in ((["pass"], "answers"), (["pass", "maybe"], "check_2"), (["pass", None], "check_2")):
        with pytest.raises(ValidationFailed) as refused:
            rubric_submit(assignment_id=assignment.pk, author=annotator, client_token=token,
                          data=RubricInput(answers=answers, rationale="Correct and short enough."))
        assert field in refused.value.field_errors
    with pytest.raises(ValidationFailed) as refused:
        rubric_submit(assignment_id=assignment.pk, author=annotator, client_token=token,
                      data=RubricInput(answers=["pass", "fail"], rationale="ok"))
    assert "rationale" in refused.value.field_errors
    assert not RubricAnswer.objects.exists()
    answer, created = rubric_submit(assignment_id=assignment.pk, author=annotator, client_token=token,
                                    data=RubricInput(answers=["pass", "fail"], rationale="Right, but too long."))
    assert created and answer.verdict == "fail" and answer.answers == ["pass", "fail"]
    again, created = rubric_submit(assignment_id=assignment.pk, author=annotator, client_token=token,
                                   data=RubricInput(answers=["pass", "pass"], rationale="Changed my mind here."))
    assert not created and again.pk == answer.pk and RubricAnswer.objects.count() == 1
    with pytest.raises(Conflict):
        rubric_submit(assignment_id=assignment.pk, author=annotator, client_token=uuid.uuid4(),
                      data=RubricInput(answers=["pass", "pass"], rationale="A second answer to it."))
    item.refresh_from_db()
    assert item.judgment_count == 1


def test_verdicts_fail_on_any_fail_pass_on_applicable_passes_na_otherwise():
    from annotation.models import rubric_verdict

    assert rubric_verdict(["pass", "na", "pass"]) == "pass"
    assert rubric_verdict(["pass", "na", "fail"]) == "fail"
    assert rubric_verdict(["na", "na"]) == "na"


def test_the_api_submit_and_who_may_not_call_it():
    project = ProjectFactory()
    _rubric_item(project)
    annotator, other = member(project), member(project)
    handle = queue_next(project=project, annotator=annotator).handle
    url = reverse("api:rubric-submit", args=[handle])
    body = {"answers": ["pass", "na"], "rationale": "Correct; length does not apply.", "time_spent_ms": 900,
            "client_token": str(uuid.uuid4())}
    assert api_as(other).post(url, body, format="json").status_code == 404  # someone else's assignment
    assert api_as(annotator).post(url, {**body, "answers": ["pass", "yes"]}, format="json").status_code == 400
    assert api_as(annotator).post(url, {**body, "answers": ["pass"] * (MAX_CHECKS + 1)}, format="json").status_code == 400
    first = api_as(annotator).post(url, body, format="json")
    assert first.status_code == 201 and first.json()["verdict"] == "pass"
    assert api_as(annotator).post(url, body, format="json").status_code == 200  # a replay


def test_a_rubric_submit_to_another_kind_of_item_is_a_conflict_that_serves_the_item_in_its_own_form(client):
    project = ProjectFactory()
    prompt = Prompt.objects.create(project=project, messages=[{"role": "user", "content": "q"}])
    Item.objects.create(project=project, kind=ItemKind.COMPARISON, prompt=prompt, target_judgments=1,
                        response_a=Response.objects.create(prompt=prompt, text="a"),
                        response_b=Response.objects.create(prompt=prompt, text="b"))
    annotator = member(project)
    handle = queue_next(project=project, annotator=annotator).handle
    client.force_login(annotator)
    page = client.post(reverse("label-rubric", args=[project.slug, handle]), {"check_1": "pass"})
    assert page.status_code == 409 and 'id="judgment-form"' in page.content.decode()  # its own form comes back
    assert not RubricAnswer.objects.exists()


def test_the_labelling_page_round_trip_keeps_what_was_typed_on_an_error(client):
    project = ProjectFactory()
    _rubric_item(project, checks=("Is <b>correct</b>.", "Is short."), text="<script>alert(1)</script> 4")
    annotator = member(project)
    client.force_login(annotator)
    page = client.post(reverse("label-next", args=[project.slug])).content.decode()
    assert 'id="rubric-form"' in page and "&lt;script&gt;alert(1)&lt;/script&gt; 4" in page
    assert "<script>alert(1)" not in page and "Is &lt;b&gt;correct&lt;/b&gt;." in page
    handle = queue_next(project=project, annotator=annotator).handle
    url = reverse("label-rubric", args=[project.slug, handle])
    token = str(uuid.uuid4())
    bad = client.post(url, {"client_token": token, "check_1": "fail", "rationale": "Wrong: it says 4 plus junk."})
    body = bad.content.decode()
    assert bad.status_code == 422 and "Pass, fail or not applicable?" in body
    assert 'name="check_1" value="fail" checked' in body and "Wrong: it says 4 plus junk." in body
    good = client.post(url, {"client_token": token, "check_1": "fail", "check_2": "pass",
                             "rationale": "Wrong: it says 4 plus junk.", "time_spent_ms": "1200"})
    assert good.status_code == 200 and RubricAnswer.objects.get().answers == ["fail", "pass"]
    mine = client.get(reverse("my-work", args=[project.slug]) + "?kind=rubrics").content.decode()
    assert "Rubric evaluations" in mine and "fail" in mine


def test_a_lead_or_engineer_who_also_annotates_is_never_served_a_rubric_evaluation():
    from annotation.models import Membership

    project = ProjectFactory()
    _rubric_item(project, raters=3)
    for role in (Role.LEAD, Role.ENGINEER):
        both = member(project)
        Membership.objects.create(project=project, user=both, role=role)  # they could read the run page
        assert queue_next(project=project, annotator=both) is None
    plain = member(project)
    assert queue_next(project=project, annotator=plain).item.kind == ItemKind.RUBRIC


def test_the_api_next_payload_of_a_rubric_item_is_blind_and_only_annotators_may_submit_it(client):
    project = ProjectFactory()
    _rubric_item(project)
    annotator = member(project)
    body = api_as(annotator).post(reverse("api:next-item", args=[project.slug])).json()
    assert set(body) == {"kind", "assignment", "lease_expires_at", "prompt", "response", "dimension", "checks"}
    assert body["kind"] == "rubric" and body["response"] == {"text": "The answer is 4."}
    url = reverse("label-rubric", args=[project.slug, body["assignment"]])
    form = {"client_token": str(uuid.uuid4()), "check_1": "pass", "check_2": "pass", "rationale": "Right and short."}
    for role, status in ((Role.LEAD, 403), (Role.ENGINEER, 403), (None, 404)):
        other = member(project, role) if role else member(ProjectFactory())
        client.force_login(other)
        assert client.post(url, form).status_code == status
    client.logout()
    assert client.post(url, form).status_code == 302  # to the login page
    assert not RubricAnswer.objects.exists()


def test_items_are_refused_without_a_rubric_or_with_too_many_people():
    project = ProjectFactory()
    with pytest.raises(ValueError):
        _rubric_item(project, checks=())
    with pytest.raises(ValueError):
        _rubric_item(project, raters=6)
    assert not Item.objects.filter(kind=ItemKind.RUBRIC).exists()
