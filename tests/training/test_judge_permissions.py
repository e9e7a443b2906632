"""Who may not call the AI-judge endpoints and pages: annotators see none of it (a judge's labels
are another rater's), outsiders learn nothing (404), anonymous people are asked to log in; leads
and engineers register judges and start their work. Nothing is created by a refused call."""
from __future__ import annotations

import pytest

from annotation.models import Role
from tests.factories import ProjectFactory, api_as, member
from tests.permissions import ANALYST_PAGE, ENGINEERS, READERS, api_mismatches, page_mismatches, people_of
from training.services import judges
from training.models import Judge, JudgeJob, JudgeKind

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    project = ProjectFactory()
    people = people_of(project, outsider_role=Role.ENGINEER)
    judge = judges.judge_create(project=project, name="j", kind=JudgeKind.ENDPOINT,
                                endpoint_url="http://127.0.0.1:9/v1", endpoint_model="m")
    job = JudgeJob.objects.create(judge=judge, use="prelabel", status="succeeded")
    return project, people, judge, job


API_CASES = [
    ("get", "/api/projects/{slug}/judges/"),
    ("post", "/api/projects/{slug}/judges/"),
    ("get", "/api/judges/{judge}/"),
    ("get", "/api/judges/{judge}/jobs/"),
    ("post", "/api/judges/{judge}/jobs/"),
    ("get", "/api/judge-jobs/{job}/"),
]


def test_only_engineers_start_a_generative_judge_run(world):
    from rewards.models import PreferenceSet
    from training.models import Run

    project, people, judge, job = world
    preference_set = PreferenceSet.objects.create(project=project, version=1, policy={}, content_hash="0" * 64,
                                                  counts={"by_split": {"train": 3}})
    url = f"/api/projects/{project.slug}/judge-runs/"
    body = {"preference_set": preference_set.pk, "config": {"base_model": "/models/tiny"}}
    assert api_mismatches(people, "post", url, ENGINEERS, body) == []
    assert not Run.objects.exists()
    refused = api_as(people["engineer"]).post(url, body, format="json")
    assert refused.status_code == 400 and "held-out" in str(refused.json()["config"]["preference_set"])
    assert not Run.objects.exists()


@pytest.mark.parametrize("method, template", API_CASES)
def test_api_refuses(world, method, template):
    project, people, judge, job = world
    url = template.format(slug=project.slug, judge=judge.pk, job=job.pk)
    body = {"name": "new", "kind": "endpoint", "endpoint_url": "http://127.0.0.1:9/v1", "endpoint_model": "m",
            "use": "prelabel"}
    assert api_mismatches(people, method, url, READERS, body) == []
    assert Judge.objects.count() == 1 and JudgeJob.objects.count() == 1


def test_a_judge_of_another_project_is_not_found(world):
    project, people, judge, job = world
    elsewhere = ProjectFactory()
    lead_elsewhere = member(elsewhere, Role.LEAD)
    client = api_as(lead_elsewhere)
    assert client.get(f"/api/judges/{judge.pk}/").status_code == 404
    assert client.post(f"/api/judges/{judge.pk}/jobs/", {"use": "prelabel"}, format="json").status_code == 404
    assert client.get(f"/api/judge-jobs/{job.pk}/").status_code == 404


@pytest.mark.parametrize("who", ["lead", "engineer"])
def test_leads_and_engineers_register_judges_and_bad_fields_are_named(world, who):
    project, people, judge, job = world
    client = api_as(people[who])
    bad = client.post(f"/api/projects/{project.slug}/judges/", {"name": "x", "kind": "endpoint",
                                                                "endpoint_url": "file:///etc/passwd"}, format="json")
    assert bad.status_code == 400 and {"endpoint_url", "endpoint_model"} <= set(bad.json())
    ok = client.post(f"/api/projects/{project.slug}/judges/", {"name": f"by {who}", "kind": "endpoint",
                                                               "endpoint_url": "http://127.0.0.1:9/v1",
                                                               "endpoint_model": "m"}, format="json")
    assert ok.status_code == 201 and ok.json()["username"].startswith("judge.")
    listed = client.get(f"/api/projects/{project.slug}/judges/").json()
    assert {row["judge"]["name"] for row in listed} == {"j", f"by {who}"}
    assert all(set(row) >= {"standing", "agreement", "overturn", "flags", "cost", "latency_p50_ms"} for row in listed)
    wrong_use = client.post(f"/api/judges/{judge.pk}/jobs/", {"use": "everything"}, format="json")
    assert wrong_use.status_code == 400 and "use" in wrong_use.json()


def test_pages_refuse(world):
    project, people, judge, job = world
    assert page_mismatches(people, "get", f"/p/{project.slug}/judges/", ANALYST_PAGE) == []
    assert page_mismatches(people, "get", f"/p/{project.slug}/judges/jobs/{job.pk}/", ANALYST_PAGE) == []
    for url, data in ((f"/p/{project.slug}/judges/", {"name": "p", "kind": "endpoint"}),
                      (f"/p/{project.slug}/judges/{judge.pk}/jobs/", {"use": "prelabel"})):
        assert page_mismatches(people, "post", url, ANALYST_PAGE, data) == []
    assert Judge.objects.count() == 1 and JudgeJob.objects.count() == 1
    # Training a generative judge: engineers only.
    train = {"annotator": 403, "lead": 403, "outsider": 404, "anonymous": 302}
    assert page_mismatches(people, "post", f"/p/{project.slug}/judges/train/", train, {"base_model": "/m"}) == []


def test_the_page_registers_a_judge_and_names_bad_fields(world, client):
    project, people, judge, job = world
    client.force_login(people["lead"])
    bad = client.post(f"/p/{project.slug}/judges/", {"name": "", "kind": "endpoint", "sure_at": "2"})
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "1 to 100 letters" in text and "From 0.5 to 1.0" in text
    ok = client.post(f"/p/{project.slug}/judges/", {"name": "page judge", "kind": "local_model", "model_dir": "/m"})
    assert ok.status_code == 302 and Judge.objects.filter(name="page judge", kind="local_model").exists()
    page = client.get(f"/p/{project.slug}/judges/").content.decode()
    assert "page judge" in page and 'id="chart-judges"' in page


def test_an_engineer_trains_a_generative_judge_from_the_page_and_bad_sets_are_refused(world, client, tmp_path):
    from rewards.models import PreferenceSet
    from training.models import Run

    project, people, judge, job = world
    (tmp_path / "config.json").write_text("{}")  # only the directory's shape is checked when queueing
    client.force_login(people["engineer"])
    no_test = PreferenceSet.objects.create(project=project, version=1, policy={}, content_hash="0" * 64,
                                           counts={"by_split": {"train": 3}})
    refused = client.post(f"/p/{project.slug}/judges/train/", {"preference_set": no_test.pk, "base_model": "/m"},
                          follow=True)
    assert "held-out" in refused.content.decode() and not Run.objects.exists()
    good = PreferenceSet.objects.create(project=project, version=2, policy={}, content_hash="1" * 64,
                                        counts={"by_split": {"train": 3, "test": 1}})
    started = client.post(f"/p/{project.slug}/judges/train/", {"preference_set": good.pk, "base_model": str(tmp_path),
                                                               "max_steps": "5"})
    run = Run.objects.get()
    assert started.status_code == 302 and started["Location"].endswith(f"/runs/{run.pk}/")
    assert run.kind == "generative_judge" and run.config["max_steps"] == 5
    page = client.get(f"/p/{project.slug}/runs/{run.pk}/").content.decode()
    assert "Generative judge" in page


def test_a_judge_cannot_be_registered_on_another_projects_reward_model(world, tiny_backbone):
    from rewards.models import PreferenceSet, RewardModel

    project, people, judge, job = world
    other = ProjectFactory()
    other_set = PreferenceSet.objects.create(project=other, version=1, policy={}, content_hash="0" * 64)
    theirs = RewardModel.objects.create(project=other, preference_set=other_set, name="theirs",
                                        base_model=tiny_backbone, path=tiny_backbone)
    answer = api_as(people["lead"]).post(f"/api/projects/{project.slug}/judges/", {
        "name": "borrowed", "kind": "reward_model", "reward_model": theirs.pk}, format="json")
    assert answer.status_code == 400 and "reward_model" in answer.json()
    from django.test import Client
    page = Client()
    page.force_login(people["lead"])
    shown = page.post(f"/p/{project.slug}/judges/", {"name": "borrowed", "kind": "reward_model",
                                                     "reward_model": str(theirs.pk)})
    assert shown.status_code == 400 and "No such reward model in this project." in shown.content.decode()
    assert not Judge.objects.filter(name="borrowed").exists()
