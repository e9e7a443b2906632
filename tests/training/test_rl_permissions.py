"""Who may not call the policy-run endpoints and pages: annotators see none of it; leads read runs,
make labelling batches and set monitor thresholds but launch nothing; outsiders get 404."""
from __future__ import annotations

import pytest
from django.test import Client

from annotation.models import Item, Role
from rewards.models import PreferenceSet
from tests.factories import ProjectFactory, api_as
from tests.permissions import ENGINEERS, READERS, api_mismatches, people_of
from training.models import FeedbackBatch, Run, RunAlert, RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    project = ProjectFactory()
    people = people_of(project, outsider_role=Role.ENGINEER)
    prompt_set = PreferenceSet.objects.create(project=project, version=1, policy={}, content_hash="0" * 64,
                                              counts={"by_split": {"train": 3, "test": 1}})
    run = Run.objects.create(project=project, kind="grpo", preference_set=prompt_set, config={"policy_path": "p"},
                             status=RunStatus.RUNNING)
    alert = RunAlert.objects.create(run=run, step=3, kind="kl_spike", message="spike", prompt_ids=[])
    return project, people, run, alert


API_CASES = [
    ("post", "/api/projects/{slug}/rl-runs/", ENGINEERS),
    ("get", "/api/runs/{run}/alerts/", READERS),
    ("get", "/api/runs/{run}/suite/", READERS),
    ("get", "/api/runs/{run}/feedback/", READERS),
    ("post", "/api/runs/{run}/feedback/", READERS),
    ("get", "/api/projects/{slug}/monitor-thresholds/", READERS),
    ("put", "/api/projects/{slug}/monitor-thresholds/", READERS),
]


@pytest.mark.parametrize("method, template, refused", API_CASES)
def test_api_refuses(world, method, template, refused):
    project, people, run, alert = world
    url = template.format(slug=project.slug, run=run.pk)
    body = {"alert": alert.pk, "kl_ceiling": 1.0, "prompt_set": run.preference_set_id, "config": {}}
    assert api_mismatches(people, method, url, refused, body) == []
    project.refresh_from_db()
    assert Run.objects.count() == 1 and not FeedbackBatch.objects.exists() and project.monitor_thresholds == {}


def test_leads_read_alerts_and_set_thresholds(world):
    project, people, run, alert = world
    lead = api_as(people["lead"])
    assert [a["kind"] for a in lead.get(f"/api/runs/{run.pk}/alerts/").json()] == ["kl_spike"]
    response = lead.put(f"/api/projects/{project.slug}/monitor-thresholds/", {"kl_ceiling": 4.5}, format="json")
    assert response.status_code == 200 and response.json()["thresholds"]["kl_ceiling"] == 4.5
    bad = lead.put(f"/api/projects/{project.slug}/monitor-thresholds/", {"kl_ceiling": -1}, format="json")
    assert bad.status_code == 400 and "kl_ceiling" in bad.json()
    # An alert with nothing to compare is refused with a reason, and nothing is created.
    refused = lead.post(f"/api/runs/{run.pk}/feedback/", {"alert": alert.pk}, format="json")
    assert refused.status_code == 400 and "Nothing to compare" in refused.json()["detail"]
    assert not Item.objects.exists()


def test_a_reward_model_run_has_no_alerts_endpoint(world):
    project, people, run, alert = world
    other = Run.objects.create(project=project, preference_set=run.preference_set, config={})
    assert api_as(people["engineer"]).get(f"/api/runs/{other.pk}/alerts/").status_code == 404


@pytest.mark.parametrize("template, data", [
    ("/p/{slug}/runs/rl/", {"policy_path": "x"}),
    ("/p/{slug}/runs/{run}/feedback/", {"alert": "{alert}"}),
    ("/p/{slug}/monitor-thresholds/", {"kl_ceiling": "1"}),
])
def test_pages_refuse(world, template, data):
    project, people, run, alert = world
    url = template.format(slug=project.slug, run=run.pk)
    data = {k: v.format(alert=alert.pk) for k, v in data.items()}
    refused = {"annotator": 403, "outsider": 404}
    if "rl" in template:
        refused["lead"] = 403
    for who, status in refused.items():
        client = Client()
        client.force_login(people[who])
        assert client.post(url, data).status_code == status, f"{who} {url}"
    project.refresh_from_db()
    assert Run.objects.count() == 1 and not FeedbackBatch.objects.exists() and project.monitor_thresholds == {}


def test_the_run_page_shows_alerts_with_the_feedback_button_to_leads(world):
    project, people, run, alert = world
    RunAlert.objects.filter(pk=alert.pk).update(prompt_ids=[1])
    client = Client()
    client.force_login(people["lead"])
    page = client.get(f"/p/{project.slug}/runs/{run.pk}/").content.decode()
    assert "kl_spike" in page and "chart-kl" in page and 'class="feedback-alert"' in page
    client.force_login(people["annotator"])
    assert client.get(f"/p/{project.slug}/runs/{run.pk}/").status_code == 403


def test_an_engineer_launches_a_policy_run_from_the_runs_page(world, tmp_path, django_capture_on_commit_callbacks):
    project, people, run, alert = world
    (tmp_path / "config.json").write_text("{}")
    client = Client()
    client.force_login(people["engineer"])
    page = client.get(f"/p/{project.slug}/runs/").content.decode()
    assert 'id="rl-run-form"' in page and 'id="thresholds-form"' in page
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/p/{project.slug}/runs/rl/", {
            "prompt_set": run.preference_set_id, "algorithm": "ppo", "policy_path": str(tmp_path),
            "verifiers": ["math", "code"], "reward_weights": "math=2, code=1", "steps": "7", "generations": "4",
            "curriculum": "on", "hardest_fraction": "0.5"})
    launched = Run.objects.exclude(pk=run.pk).get()
    assert response.status_code == 302 and response.url.endswith(f"/runs/{launched.pk}/")
    assert launched.kind == "ppo" and launched.config["verifiers"] == ["math", "code"]
    assert launched.config["reward_weights"] == {"math": 2.0, "code": 1.0} and launched.config["curriculum"] is True
    bad = client.post(f"/p/{project.slug}/runs/rl/", {"prompt_set": run.preference_set_id, "policy_path": "/nowhere"},
                      follow=True)
    assert "Not started" in bad.content.decode() and Run.objects.count() == 2
