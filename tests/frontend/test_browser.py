"""Real headless Chromium (Debian's) driven by Playwright against the live server."""
from __future__ import annotations

import os

import pytest

from annotation.models import Judgment, Response
from tests.factories import ItemFactory, member

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("browser")]

CHROMIUM = os.environ.get("PREFSTUDIO_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-quic", "--no-first-run", "--disable-sync"]


@pytest.fixture
def page():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}; `make test` installs Debian's chromium")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(15_000)
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.dialogs = dialogs
        yield page
        browser.close()


def login_with_keyboard(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.keyboard.type(username)  # the username field has autofocus
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base_url}/")


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
