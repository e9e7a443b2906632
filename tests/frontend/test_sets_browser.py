"""A lead freezes a preference set in real headless Chromium and finds its coverage charts drawn."""
from __future__ import annotations

import pytest

from annotation.models import Role
from calibration.generators import simulation as sm
from calibration.generators.simulation_store import simulation_store
from rewards.models import PreferenceSet
from tests.browser import PAINTED, login_with_keyboard
from tests.factories import ProjectFactory, celery_worker, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_lead_freezes_a_set_and_sees_its_coverage_charts(page, live_server, settings):
    project = ProjectFactory()
    sim = sm.simulate(kinds=["expert"] * 4 + ["noisy"], n_items=120, per_item=3, seed=4)
    simulation_store(project=project, sim=sim, prefix=f"sb{project.pk}")
    member(project, Role.LEAD, username="set-lead")

    login_with_keyboard(page, live_server.url, "set-lead", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/sets/")
    page.fill('input[name="name"]', "browser cut")
    page.fill('input[name="hard_share_min"]', "0.25")
    with celery_worker(settings):  # a real worker on the real Redis broker freezes it
        page.click("#freeze-form button[type=submit]")
        page.wait_for_url(f"{live_server.url}/p/{project.slug}/sets/1/", timeout=60_000)
    s = PreferenceSet.objects.get()
    assert page.text_content("#set-hash") == s.content_hash
    assert int(page.text_content("#set-pairs")) == s.counts["pairs"] > 0
    for chart in ("chart-domains", "chart-tags", "chart-gap", "chart-confidence"):
        page.wait_for_function(f"document.getElementById('{chart}').dataset.drawn === 'true'")
        assert page.evaluate(PAINTED, chart) > 500, chart
    assert "Only" in page.text_content("#set-warnings")
