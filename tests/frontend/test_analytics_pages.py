"""The analytics dashboard pages: what leads and engineers see, CSV downloads, drill-down,
background refresh with progress, settings, and untrusted text kept inert."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from django.test import Client

from annotation.models import Prompt, Role
from calibration import agreement as ag
from calibration.generators import simulation as sm
from calibration.models import AnalyticsSnapshot, SnapshotStatus
from calibration.services.analytics import snapshot_request, snapshot_run
from calibration.generators.simulation_store import simulation_store
from tests.factories import ProjectFactory, member

pytestmark = pytest.mark.django_db
POOL = ["expert"] * 5 + ["length", "position", "fast"]


@pytest.fixture
def dashboard(django_capture_on_commit_callbacks):
    project = ProjectFactory()
    sim = sm.simulate(kinds=POOL, n_items=240, per_item=6, seed=21, days=14)
    stored = simulation_store(project=project, sim=sim, prefix=f"pg{project.pk}")
    # Put hostile text in the prompt of the most contested item, so it reaches the contested table.
    votes = ag.value_counts(sim.item, sim.choice, 4, len(sim.prompts))
    contested = int(np.nanargmax(ag.unit_disagreement(votes)))
    Prompt.objects.filter(items__pk=stored["items"][contested]).update(
        messages=[{"role": "user", "content": "<img src=x onerror=alert(1)>"}])
    # And a prompt that a spreadsheet would run as a formula, on the next most contested item.
    second = int(np.argsort(-np.nan_to_num(ag.unit_disagreement(votes), nan=-1))[1])
    Prompt.objects.filter(items__pk=stored["items"][second]).update(
        messages=[{"role": "user", "content": '=HYPERLINK("http://x.example","click")'}])
    with django_capture_on_commit_callbacks(execute=False):
        snapshot = snapshot_request(project=project)
    snapshot_run(snapshot_id=snapshot.pk)
    return project, stored


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


SECTIONS = {
    "agreement": ("overview", "agreement-breakdown", "pairwise", "chart-kappa", "chart-alpha-time", "kappa-readout"),
    "annotators": ("annotators", "length-bias", "chart-length"),
    "discovery": ("discovery", "discovery-table"),
    "contested": ("contested",),
    "health": ("health", "chart-coverage", "chart-difficulty", "chart-length-hist"),
    "settings": ("analytics-settings",),
}


def test_a_lead_sees_every_section_one_at_a_time_with_the_computation_time(dashboard):
    project, _ = dashboard
    lead = client_for(member(project, Role.LEAD))
    snapshot = AnalyticsSnapshot.objects.get(project=project)
    pages = {}
    for section, ids in SECTIONS.items():
        page = lead.get(f"/p/{project.slug}/analytics/?section={section}")
        assert page.status_code == 200
        html = pages[section] = page.content.decode()
        for element in ids:
            assert f'id="{element}"' in html, (section, element)
        # Only this section's blocks: the others are one click away, not on this page.
        for other, other_ids in SECTIONS.items():
            if other != section:
                assert f'id="{other_ids[0]}"' not in html, (section, other)
        assert f"{snapshot.duration_ms} ms" in html and f'href="?section={section}" aria-current="page"' in html
    assert lead.get(f"/p/{project.slug}/analytics/").content.decode().count('id="overview"') == 1  # the default
    assert 'id="analytics-data"' in pages["agreement"]
    assert "Prefers longer responses" in pages["annotators"] and "Prefers the left response" in pages["annotators"]
    assert "Save settings" in pages["settings"]
    assert "/static/frontend/vendor/chart-4.6.1.umd.min.js" in pages["agreement"] and "cdn" not in pages["agreement"].lower()
    assert lead.get(f"/p/{project.slug}/analytics/?section=nonsense").status_code == 200


def test_contested_items_are_paged(dashboard):
    project, _ = dashboard
    lead = client_for(member(project, Role.LEAD))
    items = AnalyticsSnapshot.objects.get(project=project).payload["contested"]["items"]
    first = lead.get(f"/p/{project.slug}/analytics/?section=contested").content.decode()
    table = first.split('id="contested"')[1].split("</table>")[0]
    assert len(items) > 25, "the fixture's pool must contest more than one page"
    assert table.count("<tr><td>") == 25 and "Page 1 of" in first
    second = lead.get(f"/p/{project.slug}/analytics/?section=contested&page=2").content.decode()
    rows = second.split('id="contested"')[1].split("</table>")[0].count("<tr><td>")
    assert rows == min(25, len(items) - 25)
    assert f"<tr><td>{items[25]['item_id']}</td>" in second and f"<tr><td>{items[25]['item_id']}</td>" not in first


def test_an_engineer_reads_the_dashboard_but_gets_no_settings_form(dashboard):
    project, _ = dashboard
    engineer = client_for(member(project, Role.ENGINEER))
    html = engineer.get(f"/p/{project.slug}/analytics/?section=annotators").content.decode()
    assert 'id="annotators"' in html
    settings = engineer.get(f"/p/{project.slug}/analytics/?section=settings").content.decode()
    assert 'id="analytics-settings"' in settings and "Save settings" not in settings


def test_model_and_user_text_is_escaped_on_the_page(dashboard):
    project, _ = dashboard
    lead = member(project, Role.LEAD)
    payload = AnalyticsSnapshot.objects.get(project=project).payload
    assert any("<img" in c["prompt"] for c in payload["contested"]["items"])
    html = client_for(lead).get(f"/p/{project.slug}/analytics/?section=contested").content.decode()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_every_table_downloads_as_csv(dashboard):
    project, stored = dashboard
    client = client_for(member(project, Role.LEAD))
    for table in ("agreement", "annotators", "flags", "pairwise", "contested", "coverage"):
        response = client.get(f"/p/{project.slug}/analytics/tables/{table}.csv")
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv"), table
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        assert len(rows) >= 2, table
    rows = list(csv.DictReader(io.StringIO(client.get(f"/p/{project.slug}/analytics/tables/annotators.csv").content.decode())))
    assert {r["annotator"] for r in rows} == {u.username for u in stored["users"]}
    flagged = {r["annotator"].split("-")[1]: r["flags"] for r in rows}
    assert flagged["length"] == "length" and flagged["position"] == "position" and flagged["fast"] == "speed"
    pairs = list(csv.DictReader(io.StringIO(client.get(f"/p/{project.slug}/analytics/tables/pairwise.csv").content.decode())))
    assert len(pairs) == len(POOL) * (len(POOL) - 1) // 2
    # A prompt starting a spreadsheet formula is neutralised in the CSV.
    contested = client.get(f"/p/{project.slug}/analytics/tables/contested.csv").content.decode()
    rows = list(csv.DictReader(io.StringIO(contested)))
    formula = next(r for r in rows if "HYPERLINK" in r["prompt"])
    assert formula["prompt"].startswith("'=HYPERLINK")
    assert client.get(f"/p/{project.slug}/analytics/tables/nope.csv").status_code == 404
    # The API serves the same tables to engineers' tokens.
    from tests.factories import api_as

    engineer_api = api_as(member(project, Role.ENGINEER))
    via_api = engineer_api.get(f"/api/projects/{project.slug}/analytics/tables/annotators.csv")
    assert via_api.status_code == 200
    assert via_api.content == client.get(f"/p/{project.slug}/analytics/tables/annotators.csv").content
    assert engineer_api.get(f"/api/projects/{project.slug}/analytics/tables/nope.csv").status_code == 404


def test_drill_down_shows_the_flag_its_evidence_and_examples(dashboard):
    project, stored = dashboard
    length_user = stored["users"][POOL.index("length")]
    html = client_for(member(project, Role.LEAD)).get(
        f"/p/{project.slug}/analytics/annotators/{length_user.username}/").content.decode()
    assert "Prefers longer responses" in html and "chose the longer response in" in html
    assert "Example items:" in html and "logit_coef" in html
    assert client_for(member(project, Role.LEAD)).get(f"/p/{project.slug}/analytics/annotators/nobody/").status_code == 404


def test_refresh_queues_in_the_background_and_the_progress_partial_reloads_when_done(dashboard, django_capture_on_commit_callbacks):
    project, _ = dashboard
    client = client_for(member(project, Role.LEAD))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(f"/p/{project.slug}/analytics/refresh/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Waiting for a worker" in response.content.decode()
    assert len(callbacks) == 1  # the Celery task is sent after commit, not run in the request
    pending = AnalyticsSnapshot.objects.get(project=project, status=SnapshotStatus.QUEUED)
    progress = client.get(f"/p/{project.slug}/analytics/progress/{pending.pk}/")
    assert "HX-Refresh" not in progress and 'hx-trigger="load delay:1s"' in progress.content.decode()
    snapshot_run(snapshot_id=pending.pk)
    done = client.get(f"/p/{project.slug}/analytics/progress/{pending.pk}/")
    assert done["HX-Refresh"] == "true"


def test_the_first_visit_starts_a_computation_and_shows_its_progress(db, django_capture_on_commit_callbacks):
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        html = client_for(lead).get(f"/p/{project.slug}/analytics/").content.decode()
    assert "Waiting for a worker" in html and len(callbacks) == 1
    assert 'id="analytics-data"' not in html


def test_a_lead_changes_thresholds_and_bad_values_are_refused(dashboard):
    project, _ = dashboard
    client = client_for(member(project, Role.LEAD))
    client.post(f"/p/{project.slug}/analytics/policy/", {"bias_margin": "0.3", "domain_targets": '{"coding": 0.5}'})
    api = client.get(f"/api/projects/{project.slug}/analytics/policy/").json()
    assert api["bias_margin"] == 0.3 and api["domain_targets"] == {"coding": 0.5}
    response = client.post(f"/p/{project.slug}/analytics/policy/", {"bias_margin": "7", "domain_targets": "{oops"}, follow=True)
    html = response.content.decode()
    assert "bias_margin" in html and "domain_targets" in html
    for bad in ({"hard_share_max": "abc"}, {"hard_share_min": "2"}, {"significance": "nan"}, {"bias_margin": "inf"}):
        response = client.post(f"/p/{project.slug}/analytics/policy/", bad, follow=True)
        assert response.status_code == 200 and next(iter(bad)) in response.content.decode(), bad
    assert client.get(f"/api/projects/{project.slug}/analytics/policy/").json()["bias_margin"] == 0.3


def test_a_visit_recomputes_only_when_judgments_came_in_and_the_numbers_are_old(dashboard, django_capture_on_commit_callbacks):
    import datetime as dt

    project, _ = dashboard
    client = client_for(member(project, Role.LEAD))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.get(f"/p/{project.slug}/analytics/")
    assert callbacks == []  # fresh numbers, nothing new
    extra = sm.simulate(kinds=["expert"] * 3, n_items=4, per_item=3, seed=9)
    simulation_store(project=project, sim=extra, prefix=f"late{project.pk}")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        html = client.get(f"/p/{project.slug}/analytics/").content.decode()
    assert callbacks == [] and "12 new since" in html  # new judgments, but the numbers are recent
    AnalyticsSnapshot.objects.filter(project=project).update(finished_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        html = client.get(f"/p/{project.slug}/analytics/?section=annotators").content.decode()
    assert len(callbacks) == 1 and "Waiting for a worker" in html and 'id="annotators"' in html
