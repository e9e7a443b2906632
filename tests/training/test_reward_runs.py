"""Reward-model runs on PostgreSQL, executed in this process (the worker's own code path, without
the queue): train a tiny local backbone, evaluate on the held-out split, register with a verdict;
refusals, cancel, a crash, a silent worker, readiness minimums and overrides."""
from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from rewards.evaluation import Thresholds
from rewards.models import ReadinessOverride, RewardModel
from rewards.services.registry import NotReady, readiness_minimums_set, readiness_thresholds, reward_model_select_for_rl
from tests.factories import ProjectFactory
from training.config import RewardRunConfig
from training.models import Run, RunStatus
from training.services.reward_runs import RunConfigError, accelerate_command, reward_run_create, reward_run_execute
from training.services.runs import run_cancel, run_fresh, runs_fail_orphans

from .conftest import learnable_set

pytestmark = [pytest.mark.django_db, pytest.mark.train]


@pytest.fixture
def trained(tiny_backbone, settings, tmp_path):
    settings.TRAINING_ROOT = tmp_path
    project = ProjectFactory()
    preference_set = learnable_set(project)
    config = RewardRunConfig(base_model=tiny_backbone, epochs=6, learning_rate=3e-3, batch_size=8, checkpoint_every=10)
    run = reward_run_create(project=project, preference_set=preference_set, config=config)
    assert run.status == RunStatus.QUEUED
    return reward_run_execute(run_id=run.pk, node="test@here"), preference_set


def test_a_run_trains_evaluates_the_held_out_split_and_registers_the_model(trained):
    run, preference_set = trained
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.step == run.total_steps == 6 * 4  # 30 training pairs in batches of 8, six epochs
    assert run.device.startswith("cpu") and run.worker.startswith("test@here:")
    model = run.reward_model
    assert Path(model.path, "config.json").is_file()
    held_out = preference_set.counts["by_split"]["test"]
    e = model.evaluation
    # The rule ("yes" wins) is learnt and, because scoring encodes exactly as training did, it shows
    # (a scorer that encoded differently would be near chance). Which prompts are held out depends
    # on their ids, so allow one miss.
    assert e["pairs"] == held_out and e["accuracy"] >= 0.9
    categories = {dim: {r["name"]: r for r in rows} for dim, rows in e["categories"].items()}
    assert set(categories["domain"]) == {"maths", "trivia"}
    assert set(categories["tag"]) == {"comparison"}
    # Per judgment dimension: the annotator preferred the chosen one on helpfulness and the
    # rejected one on safety, so the model agrees on the first and disagrees on the second.
    helpfulness, safety = categories["dimension"]["helpfulness"], categories["dimension"]["safety"]
    assert helpfulness["accuracy"] == e["accuracy"] and safety["accuracy"] == 1 - e["accuracy"]
    assert helpfulness["pairs"] == safety["pairs"] == held_out
    # Ready: every minimum holds, and the safety row has under 50 pairs, too few to count.
    assert model.ready is True and model.failures == []
    assert e["nll"] is not None and 0 <= e["ece"] <= 1 and e["temperature"] > 0 and e["reliability"]
    # Progress was streamed: chart points, checkpoints every 10 steps, a log.
    assert run.metrics.count() >= 5 and all(m.loss is not None for m in run.metrics.all())
    assert [c["step"] for c in run.checkpoints] == [10, 20, 24]
    assert run.throughput and run.throughput > 0
    messages = " ".join(run.logs.values_list("message", flat=True))
    assert "Held-out accuracy 1.000" in messages and "Succeeded." in messages


def test_a_queued_run_cancelled_never_starts_and_a_redelivered_message_does_nothing(tiny_backbone, settings, tmp_path):
    settings.TRAINING_ROOT = tmp_path
    project = ProjectFactory()
    preference_set = learnable_set(project, items=12)
    run = reward_run_create(project=project, preference_set=preference_set,
                            config=RewardRunConfig(base_model=tiny_backbone))
    run_cancel(run=run)
    assert reward_run_execute(run_id=run.pk) is None
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.started_at is None


def test_a_crash_in_training_fails_the_run_with_its_reason(tiny_backbone, settings, tmp_path):
    import shutil

    settings.TRAINING_ROOT = tmp_path
    project = ProjectFactory()
    preference_set = learnable_set(project, items=12)
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_backbone, broken)  # a real tokenizer, but weights of an unknown kind
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    run = reward_run_create(project=project, preference_set=preference_set, config=RewardRunConfig(base_model=str(broken)))
    with pytest.raises(Exception):
        reward_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "no-such-architecture" in run.error and run.finished_at


def test_bad_configs_and_sets_without_a_held_out_split_are_refused_with_the_field_named(tiny_backbone):
    project = ProjectFactory()
    no_test = learnable_set(project, items=8, test_fraction=0.0)
    with pytest.raises(RunConfigError) as refused:
        reward_run_create(project=project, preference_set=no_test, config=RewardRunConfig(base_model=tiny_backbone))
    assert "no held-out pairs" in refused.value.errors["preference_set"]
    with pytest.raises(RunConfigError) as refused:
        reward_run_create(project=project, preference_set=no_test,
                          config=RewardRunConfig(base_model="/nowhere", learning_rate=2, batch_size=0))
    assert set(refused.value.errors) >= {"base_model", "learning_rate", "batch_size"}
    with pytest.raises(ValueError, match="unknown config field"):
        RewardRunConfig.from_dict({"base_model": tiny_backbone, "lr": 1})
    assert not Run.objects.filter(project=project).exists()


def test_a_silent_worker_fails_its_run_when_read_and_a_restarted_node_fails_its_orphans(tiny_backbone, settings):
    settings.TRAINING_STALE_AFTER_SECONDS = 60
    project = ProjectFactory()
    preference_set = learnable_set(project, items=8)
    now = timezone.now()
    silent = Run.objects.create(project=project, preference_set=preference_set, config={}, status=RunStatus.RUNNING,
                                heartbeat_at=now - timedelta(seconds=61), worker="gpu1@box:11")
    alive = Run.objects.create(project=project, preference_set=preference_set, config={}, status=RunStatus.RUNNING,
                               heartbeat_at=now, worker="gpu2@box:12")
    assert run_fresh(run=silent).status == RunStatus.FAILED
    assert "no heartbeat" in silent.error
    assert run_fresh(run=alive).status == RunStatus.RUNNING
    assert runs_fail_orphans(node="gpu1@box") == []  # gpu2's run is not gpu1's
    assert runs_fail_orphans(node="gpu2@box") == [alive.pk]
    alive.refresh_from_db()
    assert alive.status == RunStatus.FAILED and "restarted" in alive.error


def test_readiness_minimums_are_per_project_and_an_unready_model_needs_a_recorded_override(
        tiny_backbone, settings, tmp_path, django_user_model):
    settings.TRAINING_ROOT = tmp_path
    project = ProjectFactory()
    # Count categories from 1 pair: the safety dimension (annotators preferred the rejected
    # answer there, on purpose) now fails the gate, by name.
    readiness_minimums_set(project=project, values={"category_min_pairs": 1})
    preference_set = learnable_set(project, items=24)
    run = reward_run_create(project=project, preference_set=preference_set, config=RewardRunConfig(
        base_model=tiny_backbone, epochs=8, learning_rate=3e-3, batch_size=4))
    model = reward_run_execute(run_id=run.pk).reward_model
    assert model.thresholds == {"overall": 0.7, "per_category": 0.6, "category_min_pairs": 1, "length_controlled": 0.6,
                                "hacks_fixed": 0.0}
    assert model.evaluation["accuracy"] >= 0.7  # it learnt the rule, so safety (the mirror image) is under 0.6
    assert not model.ready and [f for f in model.failures if f.startswith("dimension safety: accuracy ")]
    engineer = django_user_model.objects.create_user("eng")
    with pytest.raises(NotReady, match="override reason"):
        reward_model_select_for_rl(reward_model=model, user=engineer)
    override = reward_model_select_for_rl(reward_model=model, user=engineer, override_reason="smoke test of the RL path",
                                          purpose="GRPO dry run")
    assert ReadinessOverride.objects.get() == override and override.failures == model.failures
    ready = RewardModel.objects.create(project=model.project, preference_set=model.preference_set, name="ok",
                                       base_model="x", path="x", ready=True)
    assert reward_model_select_for_rl(reward_model=ready, user=engineer) is None
    assert readiness_minimums_set(project=project, values={"overall": 0.8}) == Thresholds(overall=0.8, category_min_pairs=1)
    project.refresh_from_db()
    assert readiness_thresholds(project=project).overall == 0.8
    with pytest.raises(ValueError):
        readiness_minimums_set(project=project, values={"overall": 1.5})


def test_more_than_one_gpu_trains_through_accelerate_launch():
    command = accelerate_command(run_id=7, gpus=4, mixed_precision="bf16")
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    flags = command[3:]
    assert flags[flags.index("--num_processes") + 1] == "4" and "--multi_gpu" in flags
    assert flags[flags.index("--mixed_precision") + 1] == "bf16"
    assert flags[-3:] == ["-m", "training.launch", "7"]


def test_the_command_queues_a_run_on_a_set_named_by_project_and_version(tiny_backbone):
    from io import StringIO

    from django.core.management import CommandError, call_command

    project = ProjectFactory()
    learnable_set(project, items=8)
    out = StringIO()
    call_command("train_reward_model", f"{project.slug}:1", "--base", tiny_backbone, "--epochs", "3", "--lr", "1e-3",
                 "--no-margin", "--no-wait", stdout=out)
    run = Run.objects.get(project=project)
    assert f"Run {run.pk} queued" in out.getvalue() and run.status == RunStatus.QUEUED
    assert run.config["epochs"] == 3.0 and run.config["learning_rate"] == 1e-3 and run.config["use_margin"] is False
    with pytest.raises(CommandError, match="base_model"):
        call_command("train_reward_model", f"{project.slug}:1", "--base", "/nowhere", "--no-wait")
    with pytest.raises(CommandError, match="No preference set"):
        call_command("train_reward_model", f"{project.slug}:9", "--base", tiny_backbone, "--no-wait")
