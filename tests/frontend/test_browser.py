"""Real headless Chromium (Debian's) driven by Playwright against the live server."""
from __future__ import annotations

import pytest

from annotation.models import Judgment, Response
from tests.browser import login_with_keyboard
from tests.factories import ItemFactory, member

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("browser")]


def test_annotator_labels_three_items_with_only_the_keyboard(page, live_server, project):
    hostile = ItemFactory(project=project, priority=10)
    Response.objects.filter(pk=hostile.response_a_id).update(text="<script>window.__xss = 1</script> plain")
    Response.objects.filter(pk=hostile.response_b_id).update(text='<img src=x onerror="window.__xss = 2"> other')
    ItemFactory.create_batch(3, project=project)
    annotator = member(project, username="kb-annotator")

    login_with_keyboard(page, live_server.url, "kb-annotator", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/label/")
    page.wait_for_selector("#judgment-form")

    # Hostile model output is shown as text and never runs.
    assert "<script>window.__xss = 1</script>" in (page.text_content("#response-left") + page.text_content("#response-right"))
    assert page.evaluate("window.__xss") is None and page.dialogs == []
    assert page.locator(".pair img, .pair script").count() == 0

    # Item 1: A (left), clearly better; first a too-short rationale, which must not be lost.
    page.keyboard.press("a")
    page.keyboard.press("2")
    page.keyboard.press("r")
    page.keyboard.type("short")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=Write at least 10 characters")
    assert page.input_value("#rationale") == "short"
    assert page.is_checked('input[name="choice"][value="left"]')
    assert page.evaluate("document.activeElement.id") == "rationale"  # back where they were typing
    page.keyboard.press("End")
    page.keyboard.type(" answer, and it is correct.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=1 done")

    # Item 2: B (right), much better.
    page.keyboard.press("b")
    page.keyboard.press("3")
    page.keyboard.press("r")
    page.keyboard.type("Right one is accurate; left is wrong.")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=2 done")

    # Item 3: tie.
    page.keyboard.press("t")
    page.keyboard.press("r")
    page.keyboard.type("Both are equally fine here.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=3 done")

    judgments = list(Judgment.objects.filter(annotator=annotator).select_related("assignment").order_by("id"))
    assert len(judgments) == 3
    first, second, third = judgments
    assert first.item_id == hostile.pk
    assert first.choice == first.assignment.shown_left and first.strength == "clear"
    assert first.rationale == "short answer, and it is correct."
    assert second.choice != second.assignment.shown_left and second.choice in ("a", "b") and second.strength == "strong"
    assert third.choice == "tie" and third.strength == ""
    assert all(j.shown_left == j.assignment.shown_left for j in judgments)
    assert all(j.time_spent_ms > 0 for j in judgments)
    assert page.evaluate("window.__xss") is None and page.dialogs == []


def _answer_calibration_question(page, *, right: bool) -> None:
    from calibration.models import CalibrationQuestion
    from annotation.sides import to_shown

    question_id = int(page.get_attribute("#judgment-form", "data-draft")[1:])
    question = CalibrationQuestion.objects.select_related("anchor").get(pk=question_id)
    shown = to_shown(question.anchor.expert_choice, shown_left=question.shown_left)
    key = {"left": "a", "right": "b"}[shown] if right else {"left": "b", "right": "a"}[shown]
    page.keyboard.press(key)
    page.keyboard.press("2")
    page.keyboard.press("r")
    page.keyboard.type("I compared both answers against the spec.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#feedback")
    expected = "You agreed with the expert" if right else "The expert answered differently"
    assert expected in page.text_content("#feedback")
    assert question.anchor.explanation in page.text_content("#feedback")


def test_new_annotator_calibrates_fails_is_retrained_passes_then_gets_live_items(page, live_server, project):
    from calibration.models import StandingChange
    from calibration.services.policy import policy_update
    from annotation.models import Role
    from tests.factories import make_anchor

    for i, choice in enumerate("abab"):
        make_anchor(project, in_set=True, choice=choice, explanation=f"Expert note {i}: the other answer is wrong.")
    policy_update(project=project, changes={"hidden_rate": 0.0})
    live = ItemFactory.create_batch(2, project=project)
    annotator = member(project, username="newcomer")
    member(project, Role.LEAD, username="the-lead")

    login_with_keyboard(page, live_server.url, "newcomer", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/label/")

    # Round 1: half wrong (50% > 25%): feedback after each answer, then "not passed".
    for i, right in enumerate([False, False, True, True]):
        page.wait_for_selector(f"text=Calibration round 1 · question {i + 1} of 4")
        _answer_calibration_question(page, right=right)
        if i < 3:
            page.keyboard.press("Enter")
    assert "Calibration not passed" in page.text_content("#round-result")
    page.keyboard.press("Enter")
    page.wait_for_selector("#standing")
    assert "Retraining needed" in page.text_content("#standing")
    assert page.locator("#missed li").count() == 2
    assert page.locator("#judgment-form").count() == 0  # no live item

    # The lead assigns a fresh round from the calibration page.
    lead_context = page.context.browser.new_context()
    lead_page = lead_context.new_page()
    lead_page.set_default_timeout(15_000)
    login_with_keyboard(lead_page, live_server.url, "the-lead", "pw-12345678")
    lead_page.goto(f"{live_server.url}/p/{project.slug}/calibration/")
    row = lead_page.locator('tr[data-annotator="newcomer"]')
    assert "Needs retraining" in row.text_content()
    assert "Failed calibration round 1" in lead_page.text_content("#alerts")
    row.locator("text=Assign recalibration").click()
    lead_page.wait_for_selector("text=newcomer has a fresh calibration round.")
    assert "Calibrating" in lead_page.locator('tr[data-annotator="newcomer"]').text_content()
    lead_context.close()

    # Round 2: all right, passed, and live work starts.
    page.keyboard.press("Enter")  # "Check again"
    for i in range(4):
        page.wait_for_selector(f"text=Calibration round 2 · question {i + 1} of 4")
        _answer_calibration_question(page, right=True)
        if i < 3:
            page.keyboard.press("Enter")
    assert "Calibration passed" in page.text_content("#round-result")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=0 done")
    assert page.get_attribute("#judgment-form", "data-draft").startswith("a")  # a live assignment
    page.keyboard.press("t")
    page.keyboard.press("r")
    page.keyboard.type("Both answers are equally good.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=1 done")

    judgment = Judgment.objects.get(annotator=annotator)
    assert judgment.item_id in {item.pk for item in live}
    assert list(StandingChange.objects.filter(annotator=annotator).order_by("id").values_list("cause", flat=True)) == [
        "joined", "round_failed", "recalibration", "round_passed"]
