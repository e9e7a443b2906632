"""In a real browser: an anchor shown swapped (its second response on the left) gets feedback that
names each response by the letter and side this screen gave it."""
from __future__ import annotations

import json
import re

import pytest

from annotation.models import Role
from calibration.models import CalibrationQuestion
from calibration.services.anchors import anchors_import
from tests.factories import ProjectFactory, member
from tests.browser import login_with_keyboard

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("browser")]

WRONG = "The capital of Canada is Toronto, home of the CN Tower."
RIGHT = "Ottawa is the capital of Canada."


def test_an_anchor_shown_swapped_reads_consistently(page, live_server):
    project = ProjectFactory()
    result = anchors_import(project=project, lines=[json.dumps({
        "prompt": "What is the capital of Canada?", "responses": [WRONG, RIGHT], "domain": "general",
        "expert": {"choice": "b", "strength": "strong", "clear_cut": True, "calibration_set": True,
                   "explanation": "Response A claims Toronto, which is wrong. Response B gives Ottawa, which is right."},
    })])
    assert result.ok, result.errors
    member(project, Role.ANNOTATOR, username="swapped-annotator")
    login_with_keyboard(page, live_server.url, "swapped-annotator", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/label/")
    page.wait_for_selector("#judgment-form")
    # The round exists now: show its question swapped, then reload to see it that way.
    assert CalibrationQuestion.objects.update(shown_left="b") == 1
    page.goto(f"{live_server.url}/p/{project.slug}/label/")
    page.wait_for_selector("#judgment-form")
    screen = {
        "A": page.inner_text("#response-left .text"),
        "B": page.inner_text("#response-right .text"),
    }
    assert screen == {"A": RIGHT, "B": WRONG}  # swapped: the stored second response is on the left

    # Answer wrongly (the Toronto side), with the keyboard.
    page.keyboard.press("b")
    page.keyboard.press("2")
    page.keyboard.press("r")
    page.keyboard.type("B sounds more complete to me.")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#feedback")

    explanation = page.inner_text("#feedback .explanation")
    # Each response named in the explanation is the one the screen showed under that name.
    named = dict(re.findall(r"Response ([AB]) \((?:left|right)\) (claims Toronto|gives Ottawa)", explanation))
    assert named == {"B": "claims Toronto", "A": "gives Ottawa"}, explanation
    for letter, claim in named.items():
        assert ("Toronto" in screen[letter]) == ("Toronto" in claim)
    for letter, side in re.findall(r"Response ([AB]) \((left|right)\)", explanation):
        assert (letter, side) in {("A", "left"), ("B", "right")}
    # The expert's answer and the annotator's, both in screen terms, with strengths.
    assert page.inner_text("#expert-choice").startswith("A (left) is better")
    assert page.inner_text("#your-choice") == "B (right) is better (Clearly better)"
