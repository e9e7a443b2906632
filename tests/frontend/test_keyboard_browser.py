"""Issue 20's browser flows in real headless Chromium: an annotator ranks, rewrites, writes an
adversarial negative and judges a comparison with the keyboard only (each task showing its own
keys), then opens My work and edits a judgment with the keyboard; a lead opens every tab of the
project's navigation; and on a phone-width screen the label page's Submit is on screen without
scrolling, with the spec one tap away."""
from __future__ import annotations

import pytest

from annotation.models import AdversarialNegative, Judgment, RankingJudgment, Rewrite, Role
from frontend.templatetags.nav import TABS
from tests.browser import login_with_keyboard
from tests.factories import (
    ItemFactory, ProjectFactory, adversarial_line, bad_case_line, import_lines, member, ranking_line,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _legend(page) -> str:
    return page.text_content("#legend")


def _tab_until(page, test: str, limit: int = 60) -> None:
    """Press Tab until `test` (a JS expression over `el`, the focused element) holds."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const el = document.activeElement; return !!(el && ({test})); }})()"):
            return
    raise AssertionError(f"Tab never reached an element where {test}")


def _do_ranking(page) -> None:
    assert "Move it up/down" in _legend(page) and "A is better" not in _legend(page)
    page.wait_for_function("document.getElementById('order').value === 'A>B>C'")
    page.keyboard.press("ArrowDown")      # select B
    page.keyboard.press("Shift+ArrowUp")  # B first
    page.keyboard.press("j")              # A
    page.keyboard.press("j")              # C
    page.keyboard.press("=")              # C ties with A
    assert page.input_value("#order") == "B>A=C"
    page.keyboard.press("r")
    page.keyboard.type("B answers fully; A and C are equally thin.")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")


def _do_rewrite(page) -> None:
    legend = _legend(page)
    assert "Start from scratch" in legend and "Restore the bad response" in legend and "Move it up" not in legend
    page.keyboard.press("n")  # start from scratch: the box empties and takes the focus
    page.wait_for_function("document.activeElement.id === 'rewrite-text' && document.activeElement.value === ''")
    page.keyboard.type("Canberra is the capital of Australia.")
    page.keyboard.press("Escape")
    page.keyboard.press("o")  # restore the bad response ...
    page.wait_for_function("document.getElementById('rewrite-text').value.includes('Sydney')")
    page.keyboard.press("Escape")
    page.keyboard.press("n")  # ... and from scratch again
    page.keyboard.type("The capital of Australia is Canberra.")
    page.keyboard.press("Escape")
    page.keyboard.press("1")  # first flaw: Hallucination
    page.keyboard.press("3")
    page.keyboard.press("3")  # ticked and unticked again
    page.keyboard.press("r")
    page.keyboard.type("Sydney is not the capital; Canberra is.")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")


def _do_negative(page) -> None:
    assert "Choose the flaw you put in" in _legend(page)
    page.keyboard.press("e")
    page.wait_for_function("document.activeElement.id === 'negative-text'")
    page.keyboard.press("Control+a")  # the box starts with a copy of the good response
    page.keyboard.type("Water boils at 50 degrees at sea level.")
    page.keyboard.press("Escape")
    page.keyboard.press("3")  # the third flaw type: Subtle factual error
    page.keyboard.press("r")
    page.keyboard.type("A wrong boiling point stated calmly.")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")


def _do_comparison(page) -> None:
    legend = _legend(page)
    assert "A is better" in legend and "Next dimension" in legend and "Move it up" not in legend
    page.keyboard.press("a")
    page.keyboard.press("2")
    page.keyboard.press("d")  # first dimension ...
    page.keyboard.press("b")  # ... B is better on it
    page.keyboard.press("d")  # second dimension ...
    page.keyboard.press("t")  # ... a tie
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    page.keyboard.type("A is accurate overall; B reads a little better.")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")


FORMS = {"#ranking-form": _do_ranking, "#rewrite-form": _do_rewrite, "#negative-form": _do_negative,
         "#judgment-form": _do_comparison}


def test_annotator_does_every_kind_by_keyboard_then_edits_a_judgment_in_my_work(page, live_server):
    project = ProjectFactory()
    import_lines(project, [
        ranking_line("Which answer is best?", 3),
        bad_case_line("What is the capital of Australia?", "The capital of Australia is Sydney."),
        adversarial_line("At what temperature does water boil at sea level?", "At 100 degrees Celsius."),
    ])
    ItemFactory(project=project)
    annotator = member(project, username="kb-all")
    login_with_keyboard(page, live_server.url, "kb-all", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/label/")
    page.wait_for_selector("#work form.work-form")
    # Tab reaches the task before the spec (the spec used to take the first Tab): through the
    # "Skip to the content" link when the page has the focus, directly when the task holds it.
    for _ in range(3):
        page.keyboard.press("Tab")
        where = page.evaluate("(() => { const a = document.activeElement;"
                              " return a.closest('#work') ? 'work' : a.closest('#spec') ? 'spec' : a.className; })()")
        assert where != "spec"
        if where == "skip-link":
            page.keyboard.press("Enter")
        if where == "work":
            break
    assert where == "work"
    page.evaluate("document.activeElement.blur()")
    seen = []
    for _ in range(4):
        page.wait_for_selector("#work form.work-form")
        selector = next(s for s in FORMS if page.locator(s).count())
        previous = page.get_attribute("#work form.work-form", "data-draft")
        FORMS[selector](page)
        seen.append(selector)
        page.wait_for_function(
            "(prev) => { const f = document.querySelector('#work form.work-form');"
            " return (!f && document.body.textContent.includes('Nothing left to label')) || (f && f.dataset.draft !== prev); }",
            arg=previous)
    page.wait_for_selector("text=Nothing left to label")
    assert sorted(seen) == sorted(FORMS)

    ranking = RankingJudgment.objects.get(annotator=annotator)
    shown = ranking.shown_order
    assert ranking.ranking == [[shown[1]], [shown[0], shown[2]]]
    rewrite = Rewrite.objects.get(author=annotator)
    assert rewrite.text == "The capital of Australia is Canberra." and rewrite.from_scratch and rewrite.flaws == ["hallucination"]
    negative = AdversarialNegative.objects.get(author=annotator)
    assert (negative.text, negative.flaw_type) == ("Water boils at 50 degrees at sea level.", "subtle_factual_error")
    judgment = Judgment.objects.get(annotator=annotator)
    shown_a = judgment.shown_left  # A on screen was this canonical response
    other = "b" if shown_a == "a" else "a"
    dims = project.dimension_keys
    assert (judgment.choice, judgment.strength) == (shown_a, "clear")
    assert judgment.dimension_choices == {dims[0]: other, dims[1]: "tie"}

    # My work, reached from the project's tabs with the keyboard.
    _tab_until(page, "el.textContent.trim() === 'My work'")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/p/{project.slug}/my-work/")
    assert page.get_attribute(".tabs a[aria-current=page]", "href").endswith("/my-work/")
    assert "4 done today" in " ".join(page.text_content("#session").split())
    _tab_until(page, "el.classList.contains('edit-button')")
    page.keyboard.press("Enter")
    page.wait_for_selector(".edit-form")
    page.wait_for_function("document.activeElement.name === 'choice' && document.activeElement.value === 'left'")
    page.keyboard.press("ArrowRight")  # A is better -> B is better
    _tab_until(page, "el.name === 'rationale'")
    page.keyboard.press("Control+a")
    page.keyboard.type("On reflection B is the better answer after all.")
    _tab_until(page, "el.textContent.trim() === 'Save the edit'")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#judgment-{judgment.pk} >> text=Saved.")
    assert "B is better" in page.text_content(f"#judgment-{judgment.pk} .my-choice")
    judgment.refresh_from_db()
    assert (judgment.choice, judgment.revision) == (other, 2)
    assert judgment.rationale == "On reflection B is the better answer after all."


def test_a_lead_opens_every_tab_of_the_project(page, live_server):
    project = ProjectFactory()
    ItemFactory(project=project)
    lead = member(project, Role.LEAD, username="tab-lead")
    from annotation.models import Membership

    Membership.objects.create(project=project, user=lead, role=Role.ANNOTATOR)  # so Label and My work show too
    failures = []
    page.on("response", lambda r: failures.append((r.status, r.url)) if r.status >= 400 else None)
    login_with_keyboard(page, live_server.url, "tab-lead", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/lead/")
    labels = page.locator(".tabs a").all_text_contents()
    assert labels == [label for label, *_rest in TABS]
    for label in labels:
        page.locator(".tabs a", has_text=label).first.click()
        page.wait_for_load_state("load")
        current = page.locator(".tabs a[aria-current=page]")
        assert current.count() == 1 and current.text_content() == label, label
        assert project.name in page.title(), (label, page.title())
        assert page.locator("h1").count() >= 1, label
    assert failures == []


def test_a_lead_only_sees_the_tabs_their_role_opens_and_an_engineer_others(page, live_server):
    project = ProjectFactory()
    member(project, Role.ENGINEER, username="tab-eng")
    login_with_keyboard(page, live_server.url, "tab-eng", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/runs/")
    labels = page.locator(".tabs a").all_text_contents()
    assert labels == ["Import", "Analytics", "Designed data", "Sets", "Export", "Runs", "Reward models", "AI judges",
                      "Red team"]


def test_on_a_phone_the_submit_is_on_screen_without_scrolling_and_the_spec_one_tap_away(page, live_server):
    project = ProjectFactory()
    for i in range(2):
        ItemFactory(project=project, prompt__messages=[{"role": "user", "content": "A long question. " * 40}])
    annotator = member(project, username="phone")
    page.set_viewport_size({"width": 390, "height": 844})
    login_with_keyboard(page, live_server.url, "phone", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/label/")
    page.wait_for_selector("#judgment-form")
    assert page.evaluate("document.documentElement.scrollHeight") > 844 * 2  # the page is long

    def on_screen(selector: str) -> dict:
        box = page.locator(selector).bounding_box()
        assert box is not None
        assert 0 <= box["y"] and box["y"] + box["height"] <= 844 and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        # Nothing covers it: the element at its centre is it (or inside it).
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        assert page.evaluate("([x, y, s]) => document.querySelector(s).contains(document.elementFromPoint(x, y))",
                             [x, y, selector])
        return {"x": x, "y": y}

    assert page.evaluate("window.scrollY") == 0
    on_screen("#submit-button")
    # The spec: one tap on the bar opens it and brings it into view.
    spec = on_screen(".action-bar .spec-link")
    page.mouse.click(spec["x"], spec["y"])
    page.wait_for_function("document.getElementById('spec').open")
    assert page.locator("#spec summary").bounding_box()["y"] < 844
    page.evaluate("window.scrollTo(0, 0)")
    # Choose by tapping the controls where they are, type the rationale, then tap Submit where it is.
    page.check("input[name=choice][value=left]")
    page.check("input[name=strength][value=clear]")
    page.fill("#rationale", "A is accurate; B is not, on a phone.")
    page.evaluate("window.scrollTo(0, 0)")
    submit = on_screen("#submit-button")
    page.mouse.click(submit["x"], submit["y"])
    page.wait_for_function("document.getElementById('progress').textContent.includes('1 done')")
    assert Judgment.objects.filter(annotator=annotator).count() == 1
