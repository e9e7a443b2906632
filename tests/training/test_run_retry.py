"""A failed run is retried from its page and the API as a new run with the same set and config
(the last step of the lifecycle every background job kind shares); a reward-model run continues
from the last checkpoint the failed one kept."""
from __future__ import annotations

import pytest
from django.test import Client

from annotation.models import Role
from tests.factories import ProjectFactory, api_as, member
from training.config import RewardRunConfig
from training.models import Run, RunStatus
from training.services.reward_runs import reward_run_create
from training.services.runs import run_fail

from .conftest import learnable_set

pytestmark = [pytest.mark.django_db, pytest.mark.train]


def test_a_failed_run_is_retried_by_api_and_page_from_its_last_checkpoint(tiny_backbone, tmp_path,
                                                                          django_capture_on_commit_callbacks):
    project = ProjectFactory()
    preference_set = learnable_set(project, items=8)
    engineer = member(project, Role.ENGINEER)
    run = reward_run_create(project=project, preference_set=preference_set,
                            config=RewardRunConfig(base_model=tiny_backbone, epochs=2), user=engineer)
    api = api_as(engineer)
    assert api.post(f"/api/runs/{run.pk}/retry/").status_code == 409  # queued, not failed
    checkpoint = tmp_path / "checkpoint-4"
    checkpoint.mkdir()
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, checkpoints=[
        {"step": 2, "path": str(tmp_path / "gone")}, {"step": 4, "path": str(checkpoint)}])
    run_fail(run_id=run.pk, reason="The worker stopped reporting: no heartbeat for over 180 s.")
    assert api_as(member(project, Role.LEAD)).post(f"/api/runs/{run.pk}/retry/").status_code == 403

    with django_capture_on_commit_callbacks() as sent:
        answer = api.post(f"/api/runs/{run.pk}/retry/")
    assert answer.status_code == 202 and len(sent) == 1
    again = Run.objects.get(pk=answer.json()["id"])
    assert again.status == RunStatus.QUEUED and again.preference_set == preference_set
    assert again.config == {**run.config, "resume_from": str(checkpoint)}
    assert f"Retry of run #{run.pk}" in " ".join(again.logs.values_list("message", flat=True))

    page = Client()
    page.force_login(engineer)
    assert 'id="run-retry"' in page.get(f"/p/{project.slug}/runs/{run.pk}/").content.decode()
    answer = page.post(f"/p/{project.slug}/runs/{run.pk}/retry/")
    newest = Run.objects.latest("pk")
    assert answer.status_code == 302 and answer["Location"] == f"/p/{project.slug}/runs/{newest.pk}/"
    assert newest.pk != again.pk and newest.status == RunStatus.QUEUED
