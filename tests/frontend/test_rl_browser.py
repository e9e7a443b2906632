"""A running GRPO run's page in headless Chromium: its reward, KL, length, hedging/list and entropy
charts grow as the worker reports steps; an alert and a weak checkpoint appear live, and one click
turns the alert into comparison items for annotators."""
from __future__ import annotations

import pytest
from django.utils import timezone

from annotation.models import Item, Prompt, Role
from rewards.models import PreferenceSet
from tests.factories import ProjectFactory, member
from tests.browser import PAINTED, login_with_keyboard
from training.models import FeedbackBatch, Run, RunAlert, RunKind, RunSample, RunStatus, SampleRole, SuiteResult
from training.services.runs import run_progress

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHARTS = ("chart-reward", "chart-kl", "chart-length", "chart-style", "chart-entropy")


def _step(run: Run, step: int) -> None:
    values = {"reward": 0.1 * step, "reward/reward_model": 0.05 * step, "reward/math": 0.5, "verifier": 0.5,
              "kl": 0.2 * step, "length": 10 + step, "hedging": 1.0, "list_rate": 0.1, "entropy": 2.0 - 0.01 * step}
    run_progress(run_id=run.pk, step=step, total=50, loss=0.01, learning_rate=1e-6, pairs_per_s=4.0,
                 eta_seconds=60, metric=True, values=values)


def test_a_running_policy_runs_charts_alerts_and_suite_update_live(page, live_server):
    project = ProjectFactory()
    lead = member(project, Role.LEAD, username="the-lead")
    lead.set_password("pw-12345678")
    lead.save()
    prompt_set = PreferenceSet.objects.create(project=project, version=1, policy={}, content_hash="0" * 64,
                                              counts={"by_split": {"train": 3, "test": 1}})
    run = Run.objects.create(project=project, kind=RunKind.GRPO, preference_set=prompt_set,
                             config={"policy_path": "/policy", "algorithm": "grpo"}, status=RunStatus.RUNNING,
                             phase="training (GRPO)", started_at=timezone.now(), heartbeat_at=timezone.now(),
                             total_steps=50, device="cpu (fp32)")
    for step in (1, 2, 3):
        _step(run, step)
    login_with_keyboard(page, live_server.url, "the-lead", "pw-12345678")
    page.goto(f"{live_server.url}/p/{project.slug}/runs/{run.pk}/")
    for chart in CHARTS:
        page.wait_for_selector(f"#{chart}[data-points='3']")
        assert page.evaluate(PAINTED, chart) > 200, chart
    assert page.text_content("#run-alerts-none")

    for step in range(4, 21):  # the worker goes on; the page polls every 2 s
        _step(run, step)
    prompt = Prompt.objects.create(project=project, messages=[{"role": "user", "content": "what is 2 + 2 ?"}],
                                   domain="math", ground_truth="4")
    RunSample.objects.create(run=run, step=0, role=SampleRole.REFERENCE, prompt=prompt, completion="4")
    RunSample.objects.create(run=run, step=20, role=SampleRole.POLICY, prompt=prompt,
                             completion='<b onmouseover="alert(1)">maybe</b> perhaps 5')
    RunAlert.objects.create(run=run, step=20, kind="length_without_verifier", prompt_ids=[prompt.pk],
                            message="Mean length rose 45% while the verifier reward did not.")
    SuiteResult.objects.create(run=run, step=20, dimension="math", prompts=1, verified=1, verifier_pass=0.0,
                               mean_length=4, hedging=50.0, list_rate=0, weak=True,
                               reasons=["hedging rose from 0.0 to 50.0 per 100 words"], flagged=[prompt.pk])
    for chart in CHARTS:
        page.wait_for_selector(f"#{chart}[data-points='20']", timeout=15_000)
    page.wait_for_selector("#run-alerts li[data-kind='length_without_verifier']", timeout=15_000)
    assert "Step 20 of 50" in page.text_content("#run-numbers")
    assert "hedging rose" in page.text_content("table.suite[data-step='20']")

    # The answers that raised the alert are shown as text, never as live HTML.
    page.click("#run-alerts details.alert-samples summary")
    assert '<b onmouseover="alert(1)">maybe</b> perhaps 5' in page.text_content("#run-alerts details.alert-samples")
    assert page.query_selector("#run-alerts b[onmouseover]") is None
    page.click("#run-alerts .feedback-alert")
    page.wait_for_selector("#run-alerts .badge.ok")
    batch = FeedbackBatch.objects.get(run=run)
    item = Item.objects.get(pk=batch.items[0])
    assert {item.response_a.text, item.response_b.text} == {"4", '<b onmouseover="alert(1)">maybe</b> perhaps 5'}
