"""Who may not call the training endpoints and pages: annotators see none of it, leads read runs
and the registry and set readiness minimums but start, cancel and choose nothing; outsiders get 404."""
from __future__ import annotations

import pytest
from django.test import Client

from annotation.models import Role
from rewards.models import PreferenceSet, RewardModel
from tests.factories import ProjectFactory
from tests.permissions import ENGINEERS, READERS, api_mismatches, page_mismatches, people_of
from training.models import Run, RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    project = ProjectFactory()
    people = people_of(project, outsider_role=Role.ENGINEER)  # an engineer elsewhere, not here
    preference_set = PreferenceSet.objects.create(project=project, version=1, policy={}, content_hash="0" * 64,
                                                  counts={"by_split": {"train": 3, "test": 1}})
    model = RewardModel.objects.create(project=project, preference_set=preference_set, name="m", base_model="b",
                                       path="p", evaluation={"pairs": 1, "accuracy": 1.0, "categories": {}},
                                       failures=["too few pairs"])
    run = Run.objects.create(project=project, preference_set=preference_set, config={"base_model": "b"},
                             status=RunStatus.QUEUED, reward_model=model)
    return project, people, run, model


API_CASES = [
    ("get", "/api/projects/{slug}/runs/", READERS),
    ("post", "/api/projects/{slug}/runs/", ENGINEERS),
    ("get", "/api/runs/{run}/", READERS),
    ("get", "/api/runs/{run}/metrics/", READERS),
    ("get", "/api/runs/{run}/logs/", READERS),
    ("post", "/api/runs/{run}/cancel/", ENGINEERS),
    ("get", "/api/projects/{slug}/reward-models/", READERS),
    ("get", "/api/reward-models/{model}/", READERS),
    ("post", "/api/reward-models/{model}/select/", ENGINEERS),
    ("get", "/api/projects/{slug}/readiness/", READERS),
    ("put", "/api/projects/{slug}/readiness/", READERS),
]


@pytest.mark.parametrize("method, template, refused", API_CASES)
def test_api_refuses(world, method, template, refused):
    project, people, run, model = world
    url = template.format(slug=project.slug, run=run.pk, model=model.pk)
    assert api_mismatches(people, method, url, refused) == []
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and not run.cancel_requested  # nobody refused changed anything


PAGES = ["/p/{slug}/runs/", "/p/{slug}/runs/{run}/", "/p/{slug}/reward-models/", "/p/{slug}/reward-models/{model}/"]


@pytest.mark.parametrize("template", PAGES)
def test_pages_refuse_annotators_outsiders_and_anonymous(world, template):
    project, people, run, model = world
    url = template.format(slug=project.slug, run=run.pk, model=model.pk)
    assert page_mismatches(people, "get", url, {**READERS, "anonymous": 302, "lead": 200, "engineer": 200}) == []


@pytest.mark.parametrize("template", ["/p/{slug}/runs/", "/p/{slug}/runs/{run}/cancel/", "/p/{slug}/reward-models/{model}/"])
def test_engineer_only_posts_refuse_leads_and_annotators(world, template):
    project, people, run, model = world
    url = template.format(slug=project.slug, run=run.pk, model=model.pk)
    data = {"override_reason": "x", "preference_set": run.preference_set_id}
    assert page_mismatches(people, "post", url, {"annotator": 403, "lead": 403, "outsider": 404}, data) == []
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and not model.overrides.exists() and Run.objects.count() == 1


def test_annotators_cannot_change_readiness_minimums_on_the_page(world):
    project, people, run, model = world
    client = Client()
    client.force_login(people["annotator"])
    assert client.post(f"/p/{project.slug}/reward-models/", {"overall": "0.1"}).status_code == 403
    client.force_login(people["lead"])
    assert client.post(f"/p/{project.slug}/reward-models/", {"overall": "0.8"}).status_code == 302
    project.refresh_from_db()
    assert project.readiness_minimums["overall"] == 0.8
