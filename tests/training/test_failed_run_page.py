"""A failed run's page leads with the reason and draws no empty charts (issue 20)."""
from __future__ import annotations

import pytest
from django.test import Client

from annotation.models import Role
from tests.factories import ProjectFactory, member
from .conftest import learnable_set
from training.config import RewardRunConfig
from training.models import Run, RunStatus
from training.services.reward_runs import reward_run_create

pytestmark = pytest.mark.django_db


def _page(project, run, user) -> str:
    client = Client()
    client.force_login(user)
    answer = client.get(f"/p/{project.slug}/runs/{run.pk}/")
    assert answer.status_code == 200
    return answer.content.decode()


def test_a_run_that_failed_before_a_step_shows_the_reason_first_and_no_charts(tiny_backbone):
    project = ProjectFactory()
    run = reward_run_create(project=project, preference_set=learnable_set(project, items=8),
                            config=RewardRunConfig(base_model=str(tiny_backbone)))
    Run.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, error="CUDA out of memory at step 0")
    html = _page(project, run, member(project, Role.ENGINEER))
    reason = html.index("Failed: CUDA out of memory at step 0")
    assert reason < html.index('id="run-status"'), "the reason comes before the status line"
    assert "<canvas" not in html and 'id="run-progress"' not in html
    assert "nothing to chart" in html


def test_a_queued_run_keeps_its_chart_for_the_steps_to_come(tiny_backbone):
    project = ProjectFactory()
    run = reward_run_create(project=project, preference_set=learnable_set(project, items=8),
                            config=RewardRunConfig(base_model=str(tiny_backbone)))
    html = _page(project, run, member(project, Role.LEAD))
    assert 'id="chart-loss"' in html and "Failed:" not in html
