"""A lead opens the analytics dashboard in real headless Chromium: the first visit queues the
computation, a real Celery worker (real Redis) computes it, the page reloads itself and every chart
is drawn on its canvas."""
from __future__ import annotations

import pytest

from annotation.models import Role
from calibration.generators import simulation as sm
from calibration.models import AnalyticsSnapshot
from calibration.generators.simulation_store import simulation_store
from tests.browser import PAINTED, login_with_keyboard
from tests.factories import ProjectFactory, celery_worker, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("celery")]

# Each section of the dashboard and the charts it draws.
CHARTS = {"agreement": ("chart-alpha-time", "chart-kappa"), "annotators": ("chart-length",),
          "health": ("chart-length-hist", "chart-coverage", "chart-difficulty")}
LEGEND = "(id) => Chart.getChart(document.getElementById(id)).data.datasets.map((d) => d.label)"


def test_lead_opens_the_dashboard_and_finds_every_chart_drawn(page, live_server, settings):
    project = ProjectFactory()
    sim = sm.simulate(kinds=["expert"] * 5 + ["length", "position"], n_items=150, per_item=5, seed=8, days=21)
    simulation_store(project=project, sim=sim, prefix=f"br{project.pk}")
    member(project, Role.LEAD, username="chart-lead")

    with celery_worker(settings):
        login_with_keyboard(page, live_server.url, "chart-lead", "pw-12345678")
        page.goto(f"{live_server.url}/p/{project.slug}/analytics/")
        # The first visit queues the work; the progress partial polls and reloads the page when done.
        page.wait_for_selector("#chart-kappa[data-drawn='true']", timeout=60_000)
        for section, charts in CHARTS.items():
            page.goto(f"{live_server.url}/p/{project.slug}/analytics/?section={section}")
            for chart in charts:
                page.wait_for_selector(f"#{chart}[data-drawn='true']")
                assert page.evaluate(PAINTED, chart) > 500, f"{chart} is blank"
            if section == "annotators":
                assert page.locator("#annotators tr.suspect").count() >= 2
            if section == "health":
                # No target is set in this project: no "target" series, so no empty legend entry.
                assert page.evaluate(LEGEND, "chart-coverage") == ["share"]
                assert page.evaluate(LEGEND, "chart-difficulty") == ["share"]
            if section == "agreement":
                # A tap on a heatmap cell (hover does not exist on a phone) writes it into the readout.
                page.locator("#chart-kappa").scroll_into_view_if_needed()
                box = page.locator("#chart-kappa").bounding_box()
                cell = page.evaluate("(() => { const e = Chart.getChart(document.getElementById('chart-kappa'))"
                                     ".getDatasetMeta(0).data[0].getCenterPoint(); return {x: e.x, y: e.y}; })()")
                x, y = box["x"] + cell["x"], box["y"] + cell["y"]
                page.mouse.click(x, y)
                page.wait_for_function("document.getElementById('kappa-readout').textContent.includes('κ =')")
                assert "shared items" in page.text_content("#kappa-readout")
        page.goto(f"{live_server.url}/p/{project.slug}/analytics/")
        first = AnalyticsSnapshot.objects.get(project=project)
        assert page.text_content("#computation-ms") == f"{first.duration_ms} ms"

        # Recompute from the button: a progress bar, then the page reloads itself with the new numbers.
        with page.expect_navigation(timeout=60_000):
            page.click("text=Recompute now")
            page.wait_for_selector("#analytics-progress progress, #analytics-progress .progress-line")
        page.wait_for_selector("#chart-kappa[data-drawn='true']")
        assert AnalyticsSnapshot.objects.filter(project=project, status="succeeded").count() == 2
        assert page.locator("#analytics-progress").count() == 0

        # Drill down into a flagged annotator.
        page.goto(f"{live_server.url}/p/{project.slug}/analytics/?section=annotators")
        page.click("#annotators tr.suspect a")
        page.wait_for_selector(".flag-detail")
        assert "Example items" in page.text_content("#flags")
