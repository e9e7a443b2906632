"""GRPO through TRL's GRPOTrainer with the hybrid reward, on a tiny locally built policy on CPU:
the toy task (answer "what is 2 + 2 ?") where the math verifier's reward rises over a short run,
the per-component reward wiring, checkpoints with the suite hook, and stopping on request."""
from __future__ import annotations

import numpy as np
import pytest

from training.backends import grpo_trl
from training.backends.rl_common import HybridReward, RewardBatch, SilentHooks, step_metrics
from training.config import RLRunConfig

pytestmark = pytest.mark.train

TOY = {"prompt": [{"role": "user", "content": "what is 2 + 2 ?"}], "ground_truth": "4", "domain": "math", "prompt_id": 1}


@pytest.mark.parametrize("seed", [0, 1])
def test_the_math_verifier_reward_rises_on_the_toy_task(tmp_path, seed):
    from training.generators.tiny import build_tiny_policy

    policy = build_tiny_policy(tmp_path / "policy", seed=seed)
    config = RLRunConfig(policy_path=str(policy), verifiers=["math"], steps=20, seed=seed, generations=8,
                         prompts_per_step=2, learning_rate=1e-2, max_new_tokens=4, kl_coef=0.01, checkpoint_every=100)
    hooks = SilentHooks()
    outcome = grpo_trl.train(config=config, rows=[TOY, TOY], reward=HybridReward(config=config),
                             output_dir=tmp_path / "out", hooks=hooks)
    rewards = [m["reward/math"] for m in hooks.metrics]
    assert outcome.steps_done == 20 and len(rewards) == 20 and not outcome.stopped
    # Measured by hand over seeds 0-2: first five steps 0.05-0.20, last five 0.69-0.94.
    assert np.mean(rewards[-5:]) > np.mean(rewards[:5]) + 0.3 and np.mean(rewards[-5:]) > 0.5
    assert all(m["kl"] is not None and m["kl"] >= 0 for m in hooks.metrics[1:])
    assert hooks.checkpoints == [20]  # the last step always leaves a checkpoint
    assert (tmp_path / "out" / "checkpoint-20" / "config.json").is_file()


def test_each_component_is_weighted_and_not_applicable_adds_nothing(tmp_path):
    config = RLRunConfig(policy_path="unused", verifiers=["math", "format"], format_tags=["answer"],
                         reward_weights={"reward_model": 0.5, "math": 2.0, "format": 1.0})
    reward = HybridReward(config=config, scorer=lambda prompts, completions: [1.0 for _ in completions])
    chat = {"prompt": [{"role": "user", "content": "hello"}], "ground_truth": None, "domain": "chat"}
    batch = reward([TOY, TOY, chat], ["<answer>4</answer>", "5", "hi"])
    assert batch.components["math"] == [1.0, 0.0, None]  # the chat prompt has no answer to check
    assert batch.components["format"][0] == 1.0 and batch.components["format"][1] == 0.0
    assert batch.total == [0.5 + 2.0 + 1.0, 0.5 + 0.0 + 0.0, 0.5 + batch.components["format"][2]]
    metrics = step_metrics(batch=batch, completions=["<answer>4</answer>", "5", "hi"], lengths=[3, 1, 1], kl=0.5,
                           entropy=1.2)
    assert metrics["reward/math"] == 0.5 and metrics["kl"] == 0.5 and metrics["length"] == pytest.approx(5 / 3)
    assert set(metrics) >= {"reward", "verifier", "hedging", "list_rate", "entropy", "reward/reward_model"}


def test_a_step_with_no_verifier_applicable_has_no_verifier_value():
    assert step_metrics(batch=RewardBatch(total=[1.0], components={"math": [None]}), completions=["x"], lengths=[1],
                        kl=None, entropy=None)["verifier"] is None


def test_a_stop_request_ends_the_run_at_the_next_step(tmp_path, tiny_policy):
    class StopAfterTwo(SilentHooks):
        asked = 0

        def should_stop(self):  # asked once per step, as the run's cancel flag is
            self.asked += 1
            return self.asked >= 2

    config = RLRunConfig(policy_path=tiny_policy, verifiers=["math"], steps=10, generations=2, prompts_per_step=1,
                         max_new_tokens=2, checkpoint_every=1)
    hooks = StopAfterTwo()
    outcome = grpo_trl.train(config=config, rows=[TOY], reward=HybridReward(config=config), output_dir=tmp_path,
                             hooks=hooks)
    assert outcome.stopped and outcome.steps_done == 2 and hooks.checkpoints == [1, 2]


def test_a_reference_other_than_the_start_is_the_kl_anchor(tmp_path, tiny_policy):
    from training.generators.tiny import build_tiny_policy

    reference = build_tiny_policy(tmp_path / "reference", seed=7)  # same vocabulary, other weights
    config = RLRunConfig(policy_path=tiny_policy, reference_path=str(reference), verifiers=["math"], steps=2,
                         generations=4, prompts_per_step=1, max_new_tokens=3, kl_coef=0.1, checkpoint_every=10)
    hooks, default = SilentHooks(), SilentHooks()
    grpo_trl.train(config=config, rows=[TOY], reward=HybridReward(config=config), output_dir=tmp_path / "out",
                   hooks=hooks)
    own = RLRunConfig(**{**config.to_dict(), "reference_path": ""})
    grpo_trl.train(config=own, rows=[TOY], reward=HybridReward(config=own), output_dir=tmp_path / "own",
                   hooks=default)
    # At step 1 the policy is its own starting point: KL 0 to itself, not to another model.
    assert default.metrics[0]["kl"] == 0.0
    assert hooks.metrics[0]["kl"] > 0.01


def test_too_few_prompts_for_a_step_is_an_error_not_a_silent_success(tmp_path, tiny_policy):
    config = RLRunConfig(policy_path=tiny_policy, verifiers=["math"], steps=3, generations=2, prompts_per_step=2,
                         max_new_tokens=2)
    with pytest.raises(RuntimeError, match="cannot fill a step"):
        grpo_trl.train(config=config, rows=[TOY], reward=HybridReward(config=config), output_dir=tmp_path,
                       hooks=SilentHooks())
