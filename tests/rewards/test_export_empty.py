"""An export that would hold no row says so and why, in the API (409), the CLI (an error, no file
written) and on the export page, instead of an empty file."""
from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from calibration.models import StandingState
from calibration.services.standing import standing_override
from tests.factories import ItemFactory, ProjectFactory, api_as, label_all, member

pytestmark = pytest.mark.django_db


def _export(user, project, **params):
    return api_as(user).get(f"/api/projects/{project.slug}/export/", params)


@pytest.fixture
def comparisons_only():
    project = ProjectFactory(overlap=1)
    ItemFactory.create_batch(3, project=project)
    label_all(project, [member(project)])
    return project, member(project, "engineer")


@pytest.mark.parametrize("fmt, why", [
    ("ranking", "no ranking judgments"),
    ("sft-messages", "no approved expert rewrites"),
    ("sft-prompt-completion", "no approved expert rewrites"),
])
def test_a_format_with_nothing_to_hold_is_refused_with_the_reason(comparisons_only, fmt, why):
    project, engineer = comparisons_only
    answer = _export(engineer, project, format=fmt)
    assert answer.status_code == 409 and why in answer.json()["detail"], answer.content
    assert _export(engineer, project, format="trl").status_code == 200  # the pairs are there


def test_pairs_from_ties_only_are_refused_naming_the_ties_and_the_chosen_kinds():
    project = ProjectFactory(overlap=1)
    ItemFactory.create_batch(2, project=project)
    label_all(project, [member(project)], prefer="tie")
    engineer = member(project, "engineer")
    detail = _export(engineer, project, format="trl").json()["detail"]
    assert "2 comparison judgments, 0 preferring one response" in detail and "ties and both-bad" in detail
    only = _export(engineer, project, format="trl", tags="rewrite").json()["detail"]
    assert only.startswith("No preference pairs from rewrite: 0 pairs from approved expert rewrites")


def test_an_export_emptied_by_excluding_its_annotators_says_so(comparisons_only):
    project, engineer = comparisons_only
    annotator = project.memberships.get(role="annotator").user
    standing_override(project=project, annotator=annotator, to_state=StandingState.EXCLUDED, reason="test",
                      actor=engineer)
    answer = _export(engineer, project, format="trl")
    assert answer.status_code == 409
    assert "3 judgments of 1 excluded annotator(s) are left out" in answer.json()["detail"]
    assert _export(engineer, project, format="trl", include_excluded="true").status_code == 200


def test_the_command_writes_no_file_and_says_why(comparisons_only, tmp_path):
    project, _ = comparisons_only
    out = tmp_path / "ranking.jsonl"
    with pytest.raises(CommandError, match="no ranking judgments"):
        call_command("export_preferences", "--project", project.slug, "--format", "ranking", "--out", str(out))
    assert not out.exists()
    call_command("export_preferences", "--project", project.slug, "--format", "trl", "--out", str(out))
    assert len(out.read_text().splitlines()) >= 1


def test_the_export_page_says_which_formats_are_empty_and_why(comparisons_only):
    project, engineer = comparisons_only
    client = Client()
    client.force_login(engineer)
    page = client.get(f"/p/{project.slug}/export/").content.decode()
    assert "<code>ranking</code>: <b>empty</b>. This project has no ranking judgments" in page
    assert "<code>sft-messages</code>: <b>empty</b>. This project has no approved expert rewrites" in page
    assert "<code>trl</code>: has rows." in page


def test_annotators_may_not_ask_an_empty_export_either(comparisons_only):
    project, _ = comparisons_only
    annotator = project.memberships.get(role="annotator").user
    assert _export(annotator, project, format="ranking").status_code == 403


def test_an_aggregated_export_whose_every_majority_is_split_says_so():
    """The sources are there (one judgment each way), so only reading the rows finds it empty."""
    project = ProjectFactory(overlap=2)
    ItemFactory(project=project)
    label_all(project, [member(project)], prefer="a")
    label_all(project, [member(project)], prefer="b")
    engineer = member(project, "engineer")
    assert _export(engineer, project, format="trl").status_code == 200  # one pair per judgment: two
    answer = _export(engineer, project, format="trl", aggregate="majority")
    assert answer.status_code == 409 and "every item's majority is a tie" in answer.json()["detail"]
