"""A policy run handed to a Ray engine: the worker writes the engine's files, submits the job to the
configured Ray address (here a server speaking Ray's documented job API, tests/training/
test_scaleout.py's FakeRay) and tracks it until it ends; cancel stops the Ray job; a failed job or
an unreachable cluster fails the run with the reason."""
from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connection

from rewards.models import RewardModel
from tests.factories import ProjectFactory
from training.config import RLRunConfig
from training.models import Run, RunKind, RunStatus
from training.services.runs import run_cancel
from training.services.scaleout_runs import external_run_execute

from .conftest import rl_prompt_set
from .test_scaleout import FakeRay

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fake_ray():
    fake = FakeRay()
    yield fake
    fake.close()


def _run(engine: str, address: str, tmp_path, *, algorithm: str = "grpo") -> Run:
    project = ProjectFactory()
    prompt_set = rl_prompt_set(project)
    model = RewardModel.objects.create(project=project, preference_set=prompt_set, name="rm", base_model="/rm",
                                       path="/models/rm", ready=True)
    policy = tmp_path / "policy"
    policy.mkdir(exist_ok=True)
    (policy / "config.json").write_text("{}")
    config = RLRunConfig(algorithm=algorithm, engine=engine, ray_address=address, policy_path=str(policy),
                         reward_model_id=model.pk, steps=10, generations=4, prompts_per_step=8, nodes=1,
                         gpus_per_node=8)
    return Run.objects.create(project=project, kind=algorithm, preference_set=prompt_set, config=config.to_dict(),
                              reward_model=model)


def _in_background(run_id: int):
    def target():
        try:
            external_run_execute(run_id=run_id, node="w1")
        except Exception:  # noqa: BLE001 - the run records it; the test reads the run
            pass
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread


def _wait(predicate, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := predicate()):
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.parametrize("engine, command", [("openrlhf", "openrlhf.cli.train_ppo_ray"), ("verl", "verl.trainer.main_ppo")])
def test_a_ray_run_is_written_submitted_and_tracked_to_success(fake_ray, tmp_path, settings, engine, command):
    settings.TRAINING_ROOT, settings.RAY_POLL_SECONDS = str(tmp_path), 0.05
    run = _run(engine, fake_ray.address, tmp_path)
    thread = _in_background(run.pk)
    submission = f"prefstudio-run-{run.pk}"
    _wait(lambda: submission in fake_ray.jobs)
    job = fake_ray.jobs[submission]
    assert command in job["entrypoint"] and job["metadata"]["prefstudio_run"] == str(run.pk)
    _wait(lambda: Run.objects.get(pk=run.pk).external.get("state") == "PENDING")
    fake_ray.advance(submission, "RUNNING", logs="step 1\n")
    _wait(lambda: Run.objects.get(pk=run.pk).external.get("state") == "RUNNING")
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING
    fake_ray.advance(submission, "SUCCEEDED", logs="saved\n")
    thread.join(timeout=20)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.external["state"] == "SUCCEEDED"
    assert run.external["logs_tail"] == "step 1\nsaved\n"
    assert run.external["submit_command"].startswith("ray job submit --address " + fake_ray.address)
    written = [p for p in run.external["files"]]
    assert written and all((tmp_path / p).exists() for p in written)
    if engine == "openrlhf":
        rows = [json.loads(line) for line in open(written[0])]
        assert rows and set(rows[0]) == {"input", "label"}


def test_cancel_stops_the_ray_job(fake_ray, tmp_path, settings):
    settings.TRAINING_ROOT, settings.RAY_POLL_SECONDS = str(tmp_path), 0.05
    run = _run("verl", fake_ray.address, tmp_path, algorithm="ppo")
    thread = _in_background(run.pk)
    submission = f"prefstudio-run-{run.pk}"
    _wait(lambda: submission in fake_ray.jobs)
    fake_ray.advance(submission, "RUNNING")
    _wait(lambda: Run.objects.get(pk=run.pk).external.get("state") == "RUNNING")
    run_cancel(run=Run.objects.get(pk=run.pk))
    thread.join(timeout=20)
    run.refresh_from_db()
    assert fake_ray.jobs[submission]["status"] == "STOPPED" and run.status == RunStatus.CANCELLED


def test_a_failed_job_fails_the_run_with_rays_message(fake_ray, tmp_path, settings):
    settings.TRAINING_ROOT, settings.RAY_POLL_SECONDS = str(tmp_path), 0.05
    run = _run("openrlhf", fake_ray.address, tmp_path)
    thread = _in_background(run.pk)
    submission = f"prefstudio-run-{run.pk}"
    _wait(lambda: submission in fake_ray.jobs)
    fake_ray.advance(submission, "FAILED")
    thread.join(timeout=20)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "exit code 1" in run.error


def test_an_unreachable_cluster_fails_the_run_naming_the_address(tmp_path, settings):
    settings.TRAINING_ROOT = str(tmp_path)
    run = _run("openrlhf", "http://127.0.0.1:9", tmp_path)
    with pytest.raises(Exception):
        external_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "127.0.0.1:9" in run.error
    assert run.kind == RunKind.GRPO
