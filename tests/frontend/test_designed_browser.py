"""Designed data in real headless Chromium: an expert rewrites a bad case (mouse and keyboard) and
watches the diff, a lead approves it, and an annotator ranks four responses with the keyboard only."""
from __future__ import annotations

import pytest

from annotation.models import DerivedPair, RankingJudgment, Rewrite, Role
from tests.browser import login_with_keyboard
from tests.factories import ProjectFactory, bad_case_line, import_lines, member, ranking_line

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BAD = "The capital of Australia is <b>Sydney</b>."


def test_expert_rewrites_a_bad_case_sees_the_diff_and_a_lead_approves(page, live_server):
    project = ProjectFactory(skill_domains=["geography"])
    import_lines(project, [bad_case_line("What is the capital of Australia?", BAD, domain="geography")])
    expert = member(project, username="rw-expert")
    member(project, Role.LEAD, username="rw-lead")
    from annotation.services.projects import skills_set

    skills_set(project=project, user=expert, skills=["geography"])

    login_with_keyboard(page, live_server.url, "rw-expert", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/label/")
    page.wait_for_selector("#rewrite-form")
    # The bad response is text, never markup.
    assert page.text_content("#original-text") == BAD and page.locator("#original-text b").count() == 0
    assert page.input_value("#rewrite-text") == BAD  # a copy to edit

    # Mouse into the editor, then the keyboard: select the last word and retype it.
    page.click("#rewrite-text")
    page.keyboard.press("Control+End")
    for _ in range(4):  # "Sydney</b>." is four word-steps back: . > b / < Sydney
        page.keyboard.press("Control+Shift+ArrowLeft")
    selected = page.evaluate("(() => { const t = document.getElementById('rewrite-text'); return t.value.slice(t.selectionStart, t.selectionEnd); })()")
    assert "Sydney" in selected
    page.keyboard.type("Canberra, not Sydney.")
    page.wait_for_selector(".diff-new .d-insert, .diff-new .d-replace")
    page.wait_for_function("document.querySelector('.diff-new').textContent.includes('Canberra')")
    removed = page.locator(".diff-old .d-delete, .diff-old .d-replace").all_text_contents()
    added = page.locator(".diff-new .d-insert, .diff-new .d-replace").all_text_contents()
    assert any("Sydney</b>." in t for t in removed) and any("Canberra" in t for t in added)
    assert "word" in page.text_content(".diff-summary")

    # The flaw by mouse; the rationale and the submit by keyboard.
    page.click("text=Hallucination")
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    page.keyboard.type("Sydney is not the capital; Canberra is.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=Nothing left to label")
    rewrite = Rewrite.objects.get()
    assert rewrite.status == "submitted" and rewrite.flaws == ["hallucination"]
    assert rewrite.text.endswith("Canberra, not Sydney.") and not rewrite.from_scratch
    assert not DerivedPair.objects.exists()

    # The lead reviews it: the same diff, then Approve.
    page.click("button:has-text('Log out')")
    login_with_keyboard(page, live_server.url, "rw-lead", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/rewrites/")
    card = page.locator(f"#review-{rewrite.pk}")
    assert "Canberra" in card.locator(".diff-new").text_content()
    assert "rw-expert" in card.text_content()
    card.locator(".approve-button").click()
    page.wait_for_selector(f"#review-{rewrite.pk} .status-approved")
    pair = DerivedPair.objects.get()
    assert (pair.tag, pair.strength, pair.rejected.text) == ("rewrite", "strong", BAD)
    assert pair.chosen.text == rewrite.text


def test_annotator_ranks_four_responses_with_only_the_keyboard(page, live_server):
    project = ProjectFactory()
    import_lines(project, [ranking_line("Which answer is best?", 4)])
    annotator = member(project, username="rank-kb")

    login_with_keyboard(page, live_server.url, "rank-kb", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/label/")
    page.wait_for_selector("#ranking-form")
    page.wait_for_function("document.getElementById('order').value === 'A>B>C>D'")
    assert page.locator(".rank-card").count() == 4

    page.keyboard.press("ArrowDown")        # select B
    page.keyboard.press("Shift+ArrowUp")    # move B to the top: B>A>C>D
    page.keyboard.press("j")                # select A
    page.keyboard.press("j")                # select C
    page.keyboard.press("=")                # tie C with A: B>A=C>D
    page.keyboard.press("j")                # select D
    page.keyboard.press("Shift+ArrowUp")    # D above C: B>A>D>C (C keeps its tie, now with D)
    page.keyboard.press("Shift+ArrowDown")  # and back down: B>A>C>D, C still tied upward
    assert page.input_value("#order") == "B>A=C>D"
    assert page.text_content("#order-text") == "B>A=C>D"
    assert page.locator(".rank-card .rank-pos").all_text_contents() == ["#1", "#2", "#2", "#3"]

    # A reload (or a crash) loses nothing: the draft puts the cards back in the same order.
    page.reload()
    page.wait_for_selector("#ranking-form")
    page.wait_for_function("document.getElementById('order').value === 'B>A=C>D'")
    assert [c.get_attribute("data-label") for c in page.locator(".rank-card").all()] == ["B", "A", "C", "D"]

    page.keyboard.press("r")
    page.keyboard.type("B is complete; A and C are equally partial; D is wrong.")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=Nothing left to label")

    judgment = RankingJudgment.objects.get(annotator=annotator)
    shown = judgment.shown_order
    assert judgment.ranking == [[shown[1]], [shown[0], shown[2]], [shown[3]]]
    assert judgment.time_spent_ms > 0


def test_annotator_ranks_by_dragging_with_the_mouse(page, live_server):
    project = ProjectFactory()
    import_lines(project, [ranking_line("Drag to order", 3)])
    annotator = member(project, username="rank-mouse")

    login_with_keyboard(page, live_server.url, "rank-mouse", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/label/")
    page.wait_for_selector("#ranking-form")
    page.wait_for_function("document.getElementById('order').value === 'A>B>C'")
    # Drag C onto the top half of A: C goes first.
    page.locator('.rank-card[data-label="C"]').drag_to(
        page.locator('.rank-card[data-label="A"]'), target_position={"x": 40, "y": 5})
    page.wait_for_function("document.getElementById('order').value === 'C>A>B'")
    page.locator('.rank-card[data-label="B"] .tie-toggle').click()  # B ties with A
    assert page.input_value("#order") == "C>A=B"
    page.fill("#rationale", "C is right; A and B are equally vague.")
    page.click("button:has-text('Submit')")
    page.wait_for_selector("text=Nothing left to label")
    judgment = RankingJudgment.objects.get(annotator=annotator)
    shown = judgment.shown_order
    assert judgment.ranking == [[shown[2]], [shown[0], shown[1]]]
