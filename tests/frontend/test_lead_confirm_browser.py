"""Leads' sweeping actions ask first and say what will change; the standing override starts from
the current standing (issue 20). In headless Chromium, with the keyboard."""
from __future__ import annotations

import pytest

from annotation.models import Role
from calibration.models import Anchor, StandingState
from calibration.services.standing import standing_override
from tests.browser import login_with_keyboard
from tests.factories import make_anchor, member

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("browser")]


def test_choosing_the_calibration_set_asks_first_and_says_it_replaces_the_set(page, live_server, project):
    anchors = [make_anchor(project) for _ in range(4)]
    Anchor.objects.filter(pk=anchors[0].pk).update(in_calibration_set=True)
    member(project, Role.LEAD, username="confirm-lead")
    login_with_keyboard(page, live_server.url, "confirm-lead", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/anchors/")

    replace = page.get_by_role("button", name="Replace the calibration set")
    assert not replace.is_visible(), "one click on the page does not replace the set"
    page.locator("#choose-set summary").focus()
    page.keyboard.press("Enter")
    warning = page.text_content("#choose-set")
    assert "replaces the current calibration set (1 anchor)" in warning and "none is deleted" in warning
    assert Anchor.objects.filter(project=project, in_calibration_set=True).count() == 1, "nothing changed yet"
    replace.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Calibration set chosen")
    assert Anchor.objects.filter(project=project, in_calibration_set=True).count() == 4


def test_the_override_form_starts_from_each_annotators_current_standing(page, live_server, project):
    lead = member(project, Role.LEAD, username="override-lead")
    active, excluded = member(project, username="stays-active"), member(project, username="was-excluded")
    standing_override(project=project, annotator=active, to_state=StandingState.ACTIVE, reason="t", actor=lead)
    standing_override(project=project, annotator=excluded, to_state=StandingState.EXCLUDED, reason="t", actor=lead)
    login_with_keyboard(page, live_server.url, "override-lead", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/calibration/")
    for username, state in (("stays-active", "active"), ("was-excluded", "excluded")):
        chosen = page.locator(f'tr[data-annotator="{username}"] select[name="state"]').input_value()
        assert chosen == state, (username, chosen)
