"""Training pages in headless Chromium: an engineer starts a run from the form and cancels it from
its page; a running run's page follows its progress bar and loss chart as the worker reports; a
reward model's page draws its reliability diagram and accuracy per category. Worker output is
shown as text, never as HTML."""
from __future__ import annotations

import pytest
from django.utils import timezone

from annotation.models import Role
from rewards.models import PreferenceSet, RewardModel
from tests.factories import ProjectFactory, member
from tests.browser import PAINTED, login_with_keyboard
from training.models import Run, RunMetric, RunStatus
from training.services.runs import run_log, run_progress

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EVALUATION = {
    "pairs": 120, "accuracy": 0.8, "nll": 0.45, "brier": 0.15, "ece": 0.04, "temperature": 1.3,
    "length_correlation": 0.05, "accuracy_chosen_shorter": 0.78, "accuracy_chosen_longer": 0.82,
    "pairs_chosen_shorter": 60, "pairs_chosen_longer": 60,
    "reliability": [{"low": 0.5, "high": 0.6, "predicted": 0.55, "observed": 0.5, "count": 40},
                    {"low": 0.8, "high": 0.9, "predicted": 0.85, "observed": 0.9, "count": 80}],
    "categories": {"domain": [{"name": "maths", "pairs": 70, "accuracy": 0.9}, {"name": "safety", "pairs": 50, "accuracy": 0.55}]},
}


@pytest.fixture
def world(tiny_backbone_dir):
    project = ProjectFactory()
    engineer = member(project, Role.ENGINEER, username="the-engineer")
    engineer.set_password("pw-12345678")
    engineer.save()
    preference_set = PreferenceSet.objects.create(project=project, version=1, policy={}, content_hash="0" * 64,
                                                  counts={"pairs": 40, "by_split": {"train": 30, "test": 10}})
    return project, preference_set


@pytest.fixture
def tiny_backbone_dir(tmp_path):
    """The form checks only that the backbone is a model directory; nothing trains here."""
    (tmp_path / "config.json").write_text("{}")
    return tmp_path


def test_engineer_starts_a_run_from_the_form_and_cancels_it_from_its_page(page, live_server, world, tiny_backbone_dir):
    project, preference_set = world
    login_with_keyboard(page, live_server.url, "the-engineer", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/runs/")
    page.fill("input[name=base_model]", str(tiny_backbone_dir))
    page.fill("input[name=epochs]", "2")
    page.click("#run-form button[type=submit]")
    page.wait_for_selector("#run-status")
    run = Run.objects.get(project=project)
    assert page.text_content("#run-status") == "Queued" and run.config["epochs"] == 2.0
    page.click("#run-cancel")
    page.wait_for_selector("#run-status:text('Cancelled')")
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED


def test_a_running_runs_page_follows_its_progress_and_loss_chart(page, live_server, world):
    project, preference_set = world
    run = Run.objects.create(project=project, preference_set=preference_set, config={"base_model": "/m"},
                             status=RunStatus.RUNNING, phase="training", started_at=timezone.now(),
                             heartbeat_at=timezone.now(), total_steps=100, device="cpu (fp32)")
    for step in (1, 2, 3):
        run_progress(run_id=run.pk, step=step, total=100, loss=1.0 / step, learning_rate=1e-4, pairs_per_s=20.0,
                     eta_seconds=50, metric=True)
    run_log(run_id=run.pk, message='<img src=x onerror="alert(1)"> from the worker')
    login_with_keyboard(page, live_server.url, "the-engineer", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/runs/{run.pk}/")
    page.wait_for_selector("#chart-loss[data-points='3']")
    assert page.get_attribute("#run-progress", "value") == "3"
    assert page.evaluate(PAINTED, "chart-loss") > 200
    assert '<img src=x onerror="alert(1)">' in page.text_content("#run-log") and not page.dialogs

    for step in range(4, 41):  # the worker goes on; the page polls every 2 s
        run_progress(run_id=run.pk, step=step, total=100, loss=1.0 / step, learning_rate=1e-4, pairs_per_s=20.0,
                     eta_seconds=30, metric=True)
    page.wait_for_selector("#chart-loss[data-points='40']", timeout=15_000)
    assert page.get_attribute("#run-progress", "value") == "40"
    assert "Step 40 of 100" in page.text_content("#run-numbers")

    model = RewardModel.objects.create(project=project, preference_set=preference_set, name="rm-1", base_model="/m",
                                       path="/m/out", evaluation=EVALUATION, ready=False,
                                       thresholds={"overall": 0.7, "per_category": 0.6, "category_min_pairs": 50,
                                                   "length_controlled": 0.6},
                                       failures=["domain safety: accuracy 0.55 on 50 pairs is under 0.60"])
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, step=100, reward_model=model)
    page.wait_for_selector("#run-status:text('Succeeded')", timeout=15_000)
    assert "not ready" in page.text_content("#run-result")
    assert RunMetric.objects.filter(run=run).count() == 40

    page.click("#run-result a")
    page.wait_for_selector("#chart-reliability[data-drawn='true']")
    assert page.evaluate(PAINTED, "chart-reliability") > 200 and page.evaluate(PAINTED, "chart-categories") > 200
    assert "domain safety" in page.text_content("#failures")
    page.fill("input[name=override_reason]", "a dry run of the RL pipeline")
    page.click("#select-form button")
    page.wait_for_selector("#overrides")
    assert model.overrides.get().reason == "a dry run of the RL pipeline"
