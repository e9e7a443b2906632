"""Policy runs without a worker: the launch checks (readiness gate, prompt set, config), the
monitors wired to a run (alerts stored with the answers that raised them), and closing the loop
(an alert or a weak checkpoint becomes comparison items in the annotators' queue)."""
from __future__ import annotations

import numpy as np
import pytest

from annotation.models import Item, Prompt, Role
from annotation.services.queue import queue_next
from rewards.models import RewardModel
from tests.factories import ProjectFactory, member
from training.config import RLRunConfig
from training.models import FeedbackBatch, Run, RunAlert, RunKind, RunSample, RunStatus, SampleRole, SuiteResult
from training.monitors import MonitorThresholds
from training.services.feedback import FeedbackError, feedback_batch_create
from training.services.reward_runs import RunConfigError
from training.services.rl_runs import DbRLHooks, monitor_thresholds_set, rl_prompt_rows, rl_run_create

from .conftest import rl_prompt_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def prompt_set(db):
    project = ProjectFactory()
    return rl_prompt_set(project)


def _config(policy: str, **kw) -> RLRunConfig:
    return RLRunConfig.from_dict({"policy_path": policy, "steps": 3, **kw})


def test_the_prompt_rows_carry_ground_truth_domain_and_prompt_id(prompt_set):
    rows = rl_prompt_rows(preference_set=prompt_set, split="train")
    assert rows and len({r["prompt_id"] for r in rows}) == len(rows)
    for row in rows:
        prompt = Prompt.objects.get(pk=row["prompt_id"])
        assert row["prompt"] == [{"role": m["role"], "content": m["content"]} for m in prompt.messages]
        assert row["ground_truth"] == prompt.ground_truth and row["domain"] == prompt.domain


def test_launch_refuses_an_unready_reward_model_without_a_reason_and_records_one_with(prompt_set, tiny_policy,
                                                                                       django_capture_on_commit_callbacks):
    project = prompt_set.project
    engineer = member(project, Role.ENGINEER)
    model = RewardModel.objects.create(project=project, preference_set=prompt_set, name="rm", base_model="x", path="x",
                                       ready=False, failures=["dimension safety: accuracy 0.40 on 9 pairs is under 0.60"])
    config = _config(tiny_policy, reward_model_id=model.pk)
    with pytest.raises(RunConfigError) as refused:
        rl_run_create(project=project, prompt_set=prompt_set, config=config, user=engineer)
    assert "safety" in refused.value.errors["reward_model_id"]
    assert not Run.objects.exists() and not model.overrides.exists()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        run = rl_run_create(project=project, prompt_set=prompt_set, config=config, user=engineer,
                            override_reason="safety prompts are out of scope for this run")
    assert run.kind == RunKind.GRPO and run.status == RunStatus.QUEUED and run.reward_model == model
    assert model.overrides.get().user == engineer and len(queued) == 1


@pytest.mark.parametrize("change, field", [
    ({"policy_path": "/nowhere"}, "policy_path"),
    ({"algorithm": "dpo"}, "algorithm"),
    ({"verifiers": ["math", "vibes"]}, "verifiers"),
    ({"reward_weights": {"length": 1.0}}, "reward_weights"),
    ({"generations": 1}, "generations"),
    ({"hardest_fraction": 0}, "hardest_fraction"),
    ({"engine": "verl"}, "ray_address"),
    ({"reward_model_id": 999999}, "reward_model_id"),
])
def test_launch_names_the_field_at_fault(prompt_set, tiny_policy, change, field):
    with pytest.raises(RunConfigError) as refused:
        rl_run_create(project=prompt_set.project, prompt_set=prompt_set, config=_config(tiny_policy, **change))
    assert field in refused.value.errors


def test_a_set_of_another_project_is_refused(prompt_set, tiny_policy):
    with pytest.raises(RunConfigError) as refused:
        rl_run_create(project=ProjectFactory(), prompt_set=prompt_set, config=_config(tiny_policy))
    assert "prompt_set" in refused.value.errors


def _running_run(prompt_set, tiny_policy) -> Run:
    return Run.objects.create(project=prompt_set.project, kind=RunKind.GRPO, preference_set=prompt_set,
                              config=_config(tiny_policy).to_dict(), status=RunStatus.RUNNING, total_steps=80)


def _stream(steps: int, *, spike_at: int | None = None, climb_from: int | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    for step in range(1, steps + 1):
        kl = 1.5 + rng.normal(0, 0.1)
        length = 20 + rng.normal(0, 0.5)
        if spike_at == step:
            kl = 9.0
        if climb_from is not None and step >= climb_from:
            length *= 1 + 0.03 * (step - climb_from)
        yield step, {"reward": 0.5, "verifier": 0.5 + rng.normal(0, 0.01), "kl": kl, "length": length,
                     "hedging": 0.5, "list_rate": 0.0, "entropy": 2.0}


def _feed(hooks: DbRLHooks, stream, prompt_ids):
    for step, metrics in stream:
        samples = [{"prompt_id": pid, "completion": f"answer {pid} at step {step}" + " indeed" * (step % 3),
                    "reward": float(step % 3), "length": 4} for pid in prompt_ids]
        hooks.step(step=step, total=80, loss=0.1, learning_rate=1e-5, metrics=metrics, samples=samples)


def test_monitors_on_a_run_store_alerts_with_the_answers_that_raised_them(prompt_set, tiny_policy):
    run = _running_run(prompt_set, tiny_policy)
    monitor_thresholds_set(project=prompt_set.project, values={"kl_ceiling": 8.0})
    prompt_ids = [r["prompt_id"] for r in rl_prompt_rows(preference_set=prompt_set, split="train")][:3]
    from training.services.rl_runs import monitor_thresholds

    hooks = DbRLHooks(run=run, config=_config(tiny_policy), thresholds=monitor_thresholds(project=prompt_set.project),
                      suite=[])
    _feed(hooks, _stream(80, spike_at=40, climb_from=50), prompt_ids)
    alerts = list(RunAlert.objects.filter(run=run))
    kinds = {a.kind: a for a in alerts}
    assert kinds["kl_spike"].step == 40 and kinds["kl_ceiling"].step == 40  # 9 nats > the project's 8
    assert "length_without_verifier" in kinds and kinds["length_without_verifier"].step > 50
    assert run.metrics.count() == 80
    spike = kinds["kl_spike"]
    assert sorted(spike.prompt_ids) == sorted(prompt_ids)
    kept = RunSample.objects.filter(run=run, step=40, role=SampleRole.POLICY)
    assert {s.prompt_id for s in kept} == set(prompt_ids)
    assert all(s.completion.startswith("answer") for s in kept)


def test_a_calm_run_raises_no_alert(prompt_set, tiny_policy):
    run = _running_run(prompt_set, tiny_policy)
    hooks = DbRLHooks(run=run, config=_config(tiny_policy), thresholds=MonitorThresholds(), suite=[])
    _feed(hooks, _stream(80, seed=3), [1])
    assert not RunAlert.objects.filter(run=run).exists()


def _with_samples(prompt_set, tiny_policy, *, same: bool = False):
    run = _running_run(prompt_set, tiny_policy)
    rows = rl_prompt_rows(preference_set=prompt_set, split="train")[:3]
    for row in rows:
        pid = row["prompt_id"]
        RunSample.objects.create(run=run, step=0, role=SampleRole.REFERENCE, prompt_id=pid, completion=f"ref {pid}")
        RunSample.objects.create(run=run, step=10, role=SampleRole.POLICY, prompt_id=pid,
                                 completion=f"ref {pid}" if same else f"maybe maybe {pid} perhaps")
    return run, [r["prompt_id"] for r in rows]


def test_an_alert_becomes_comparisons_in_the_annotators_queue(prompt_set, tiny_policy):
    run, prompt_ids = _with_samples(prompt_set, tiny_policy)
    alert = RunAlert.objects.create(run=run, step=10, kind="hedging_rising", message="more hedging",
                                    prompt_ids=prompt_ids)
    lead = member(prompt_set.project, Role.LEAD)
    before = Item.objects.count()
    batch = feedback_batch_create(run=run, user=lead, alert=alert)
    items = Item.objects.filter(pk__in=batch.items)
    assert len(batch.items) == 3 and Item.objects.count() == before + 3
    for item in items:
        assert item.kind == "comparison" and item.in_live_queue and item.target_judgments == prompt_set.project.overlap
        texts = {item.response_a.text, item.response_b.text}
        assert any(t.startswith("ref ") for t in texts) and any("perhaps" in t for t in texts)
        assert "rl-feedback" in item.prompt.tags and item.prompt.source == "rl_feedback"
    # Routed like any other item: a new annotator's queue serves them.
    annotator = member(prompt_set.project, Role.ANNOTATOR)
    assignment = queue_next(project=prompt_set.project, annotator=annotator)
    assert assignment is not None and assignment.item_id in batch.items


def test_a_weak_checkpoint_dimension_becomes_a_batch_of_its_flagged_prompts(prompt_set, tiny_policy):
    run, prompt_ids = _with_samples(prompt_set, tiny_policy)
    SuiteResult.objects.create(run=run, step=10, dimension="math", prompts=3, verified=3, verifier_pass=0.33,
                               mean_length=3, hedging=10, list_rate=0, weak=True, reasons=["hedging rose"],
                               flagged=prompt_ids[:2])
    batch = feedback_batch_create(run=run, step=10, dimension="math")
    assert len(batch.items) == 2 and batch.alert is None
    with pytest.raises(FeedbackError):
        feedback_batch_create(run=run, step=10, dimension="chat")  # no such suite row


def test_identical_answers_make_no_batch(prompt_set, tiny_policy):
    run, prompt_ids = _with_samples(prompt_set, tiny_policy, same=True)
    alert = RunAlert.objects.create(run=run, step=10, kind="kl_spike", message="spike", prompt_ids=prompt_ids)
    with pytest.raises(FeedbackError, match="Nothing to compare"):
        feedback_batch_create(run=run, alert=alert)
    assert not FeedbackBatch.objects.exists()


def test_launch_rl_command_queues_a_run_and_names_bad_options(prompt_set, tiny_policy,
                                                              django_capture_on_commit_callbacks):
    from django.core.management import CommandError, call_command

    target = f"{prompt_set.project.slug}:{prompt_set.version}"
    with django_capture_on_commit_callbacks(execute=False) as queued:
        call_command("launch_rl", target, "--policy", tiny_policy, "--algorithm", "ppo", "--steps", "3",
                     "--verifiers", "math,format", "--format-tags", "answer", "--weights", "math=2,format=0.5",
                     "--hardest-fraction", "0.5", "--curriculum", "--no-wait")
    run = Run.objects.get()
    assert run.kind == RunKind.PPO and len(queued) == 1
    config = RLRunConfig.from_dict(run.config)
    assert (config.steps, config.verifiers, config.format_tags, config.reward_weights, config.hardest_fraction,
            config.curriculum) == (3, ["math", "format"], ["answer"], {"math": 2.0, "format": 0.5}, 0.5, True)
    with pytest.raises(CommandError, match="generations"):
        call_command("launch_rl", target, "--policy", tiny_policy, "--generations", "1", "--no-wait")


def test_a_second_batch_from_the_same_alert_is_refused(prompt_set, tiny_policy):
    run, prompt_ids = _with_samples(prompt_set, tiny_policy)
    alert = RunAlert.objects.create(run=run, step=10, kind="kl_spike", message="spike", prompt_ids=prompt_ids)
    feedback_batch_create(run=run, alert=alert)
    with pytest.raises(FeedbackError, match="already"):
        feedback_batch_create(run=run, alert=alert)
    assert FeedbackBatch.objects.count() == 1 and Item.objects.filter(prompt__source="rl_feedback").count() == 3


def test_a_ray_run_is_refused_at_launch_when_the_engine_would_refuse_it(prompt_set, tiny_policy):
    config = _config(tiny_policy, engine="openrlhf", ray_address="http://head:8265", nodes=3, gpus_per_node=1)
    with pytest.raises(RunConfigError) as refused:
        rl_run_create(project=prompt_set.project, prompt_set=prompt_set, config=config)
    assert "reward_model_id" in refused.value.errors and "engine" in refused.value.errors


def test_a_partial_weight_map_keeps_the_other_defaults():
    from training.backends.rl_common import HybridReward

    reward = HybridReward(config=RLRunConfig(policy_path="p", reward_weights={"math": 2.0}))
    assert reward.weights == {"math": 2.0, "code": 1.0, "format": 0.2}


def _execute_in_process(run: Run):
    from training.services.rl_runs import rl_run_execute

    try:
        rl_run_execute(run_id=run.pk, node="here")
    except Exception:  # noqa: BLE001 - the run records why
        pass
    run.refresh_from_db()
    return run


def test_a_cancel_during_the_starting_policys_sampling_ends_the_run_before_training(prompt_set, tiny_policy, settings,
                                                                                    tmp_path, monkeypatch):
    from training.backends import rl_common
    from training.services.runs import run_cancel

    settings.TRAINING_ROOT = str(tmp_path)
    run = Run.objects.create(project=prompt_set.project, kind=RunKind.GRPO, preference_set=prompt_set,
                             config=_config(tiny_policy, verifiers=["math"], max_new_tokens=2).to_dict())
    real = rl_common.generate

    def generate_then_cancel(*args, **kwargs):
        run_cancel(run=Run.objects.get(pk=run.pk))  # the engineer clicks Cancel while the start is sampled
        return real(*args, **kwargs)

    monkeypatch.setattr(rl_common, "generate", generate_then_cancel)
    run = _execute_in_process(run)
    assert run.status == RunStatus.CANCELLED and not run.metrics.exists() and not run.checkpoints


def test_a_run_nothing_would_reward_fails_with_the_reason(tiny_policy, settings, tmp_path):
    from .conftest import judged_set

    settings.TRAINING_ROOT = str(tmp_path)
    project = ProjectFactory()
    chat_only = judged_set(project, [{"prompt": f"say hi {i}", "responses": ["hi", "no"], "domain": "chat"}
                                     for i in range(6)], good=lambda text: text == "hi", test_fraction=0.34)
    run = Run.objects.create(project=project, kind=RunKind.PPO, preference_set=chat_only,
                             config=_config(tiny_policy, algorithm="ppo", verifiers=["math", "code"],
                                            max_new_tokens=2).to_dict())
    run = _execute_in_process(run)
    assert run.status == RunStatus.FAILED and "Nothing would reward this run" in run.error
