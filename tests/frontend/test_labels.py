"""Words for people, not internal names, on the pages leads and engineers read (issue 20)."""
from __future__ import annotations

import re

import pytest
from django.test import Client

from annotation.models import Role
from calibration.models import StandingState
from calibration.services.standing import standing_override
from frontend.templatetags.labels import label
from tests.factories import ProjectFactory, member

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value, words", [
    ("round_passed", "passed a calibration round"), ("dawid_skene", "Dawid–Skene"),
    ("items_below_min_judgments", "items with fewer judgments than the minimum"),
    (["active", "needs_retraining"], "active, needs retraining"), (None, "—"), ([], "—"), (True, "yes"),
    ([["slight", 0.33], ["strong", 1.0]], "slight 0.33; strong 1.0"), ("wrong_tone", "wrong tone"), (3, "3"),
])
def test_the_label_filter_turns_internal_names_into_words(value, words):
    assert label(value) == words


def test_the_calibration_page_names_causes_and_states_in_words():
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    annotator = member(project)
    standing_override(project=project, annotator=annotator, to_state=StandingState.NEEDS_RETRAINING,
                      reason="spot check", actor=lead)
    client = Client()
    client.force_login(lead)
    html = client.get(f"/p/{project.slug}/calibration/").content.decode()
    assert "set by a lead" in html and "Needs retraining" in html
    text = re.sub(r"<[^>]+>", " ", html)  # what people read, not attribute values
    assert "needs_retraining" not in text and "override ·" not in text


def test_recent_imports_polls_itself_only_while_an_import_runs_and_refreshes_when_one_starts():
    from annotation.models import ImportJob, ImportStatus

    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    client = Client()
    client.force_login(lead)
    job = ImportJob.objects.create(project=project, created_by=lead, original_name="batch.jsonl",
                                   status=ImportStatus.RUNNING)
    page = client.get(f"/p/{project.slug}/import/").content.decode()
    assert 'id="recent-imports"' in page and "every 2s" in page and "batch.jsonl · Running" in page
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.SUCCEEDED, message="3 items imported")
    part = client.get(f"/p/{project.slug}/lead/imports/").content.decode()
    assert "batch.jsonl · Succeeded · 3 items imported" in part and "every 2s" not in part
    assert "importStarted from:body" in part


def test_every_page_links_the_favicon_and_it_is_served():
    from django.contrib.staticfiles import finders

    client = Client()
    page = client.get("/accounts/login/").content.decode()
    assert 'rel="icon"' in page and "favicon" in page and ".svg" in page
    found = finders.find("frontend/favicon.svg")
    assert found and open(found).read().startswith("<svg")


def test_every_page_template_names_its_page_in_the_title():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "frontend" / "templates"
    pages = [p for p in folder.rglob("*.html") if not p.name.startswith("_") and p.name != "base.html"]
    untitled = [p.name for p in pages if "{% block title %}" not in p.read_text()]
    assert untitled == []
