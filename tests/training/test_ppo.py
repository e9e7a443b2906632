"""Our PPO: each tensor function against a hand computation or a naive loop, and the whole loop on a
toy task (a tiny random policy asked "what is 2 + 2 ?", rewarded by the math verifier) where the
reward must rise, with checkpoints that resume and a stop that is obeyed. No database."""
from __future__ import annotations

import math

import pytest
import torch

from training.backends.ppo import (
    gae, masked_mean, per_token_rewards, policy_loss, response_mask, train, value_loss, whiten,
)
from training.backends.rl_common import HybridReward, SilentHooks
from training.config import RLRunConfig

pytestmark = pytest.mark.train

TOY_ROWS = [{"prompt": [{"role": "user", "content": "what is 2 + 2 ?"}], "ground_truth": "4", "domain": "math",
             "prompt_id": 1}]


# ---------------------------------------------------------------- tensor functions


def naive_gae(rewards: list[float], values: list[float], gamma: float, lam: float) -> list[float]:
    """GAE for one sequence of real tokens, written out the textbook way."""
    advantages = [0.0] * len(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        next_value = values[t + 1] if t + 1 < len(rewards) else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        advantages[t] = running
    return advantages


def prefix_mask(lengths: list[int], width: int) -> torch.Tensor:
    return (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).float()


def test_gae_matches_a_naive_loop_over_each_sequence_of_its_own_length():
    generator = torch.Generator().manual_seed(0)
    lengths, width, gamma, lam = [7, 3, 1, 5], 7, 0.9, 0.8
    rewards = torch.randn(4, width, generator=generator)
    values = torch.randn(4, width, generator=generator)  # garbage on padding: it must not leak in
    mask = prefix_mask(lengths, width)

    advantages, returns = gae(rewards, values, mask, gamma, lam)

    for row, n in enumerate(lengths):
        expected = naive_gae(rewards[row, :n].tolist(), values[row, :n].tolist(), gamma, lam)
        assert advantages[row, :n].tolist() == pytest.approx(expected, abs=1e-5)
        assert returns[row, :n].tolist() == pytest.approx(
            [a + v for a, v in zip(expected, values[row, :n].tolist())], abs=1e-5)
        assert advantages[row, n:].abs().sum() == 0 and returns[row, n:].abs().sum() == 0


def test_gae_on_a_three_token_example_worked_by_hand():
    # gamma 0.9, lambda 0.5; the fourth position is padding with values that would change everything.
    rewards = torch.tensor([[0.0, 0.0, 1.0, 5.0]])
    values = torch.tensor([[0.5, 0.2, 0.4, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    # t=2: delta = 1 - 0.4 = 0.6                 A = 0.6
    # t=1: delta = 0.9 * 0.4 - 0.2 = 0.16        A = 0.16 + 0.45 * 0.6 = 0.43
    # t=0: delta = 0.9 * 0.2 - 0.5 = -0.32       A = -0.32 + 0.45 * 0.43 = -0.1265
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.5)
    assert advantages[0].tolist() == pytest.approx([-0.1265, 0.43, 0.6, 0.0], abs=1e-6)
    assert returns[0].tolist() == pytest.approx([0.3735, 0.63, 1.0, 0.0], abs=1e-6)


def test_the_score_lands_on_the_last_real_token_and_the_kl_penalty_on_every_real_token():
    scores = torch.tensor([2.0, -1.0])
    logprobs = torch.tensor([[-1.0, -2.0, -0.5, -3.0], [-0.2, -4.0, -4.0, -4.0]])
    ref_logprobs = torch.tensor([[-1.5, -1.0, -0.5, -0.1], [-0.7, -0.1, -0.1, -0.1]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])

    rewards, kl = per_token_rewards(scores, logprobs, ref_logprobs, mask, kl_coef=0.1)

    # log-ratios: row 0 (0.5, -1.0, 0.0), row 1 (0.5); padding has large ones that must be ignored
    assert rewards[0].tolist() == pytest.approx([-0.05, 0.1, 0.0 + 2.0, 0.0])
    assert rewards[1].tolist() == pytest.approx([-0.05 - 1.0, 0.0, 0.0, 0.0])
    assert kl.tolist() == pytest.approx([-0.5, 0.5])


def test_the_kl_penalty_vanishes_with_its_coefficient_but_the_kl_is_still_measured():
    scores = torch.tensor([1.0])
    logprobs, ref_logprobs = torch.tensor([[-1.0, -1.0]]), torch.tensor([[-2.0, -2.0]])
    rewards, kl = per_token_rewards(scores, logprobs, ref_logprobs, torch.ones(1, 2), kl_coef=0.0)
    assert rewards.tolist() == [[0.0, 1.0]]
    assert kl.tolist() == [2.0]


def test_policy_loss_clips_a_ratio_beyond_the_trust_region_and_passes_no_gradient():
    old = torch.zeros(1, 1)
    new = torch.full((1, 1), math.log(1.5), requires_grad=True)  # ratio 1.5 > 1 + 0.2
    loss, clipfrac, approx_kl = policy_loss(new, old, torch.full((1, 1), 2.0), torch.ones(1, 1), clip_range=0.2)
    loss.backward()
    assert loss.item() == pytest.approx(-2.0 * 1.2)
    assert new.grad.item() == 0.0
    assert clipfrac.item() == 1.0
    assert approx_kl.item() == pytest.approx(0.5 * math.log(1.5) ** 2)


def test_policy_loss_inside_the_trust_region_is_the_plain_surrogate():
    old = torch.zeros(1, 1)
    new = torch.full((1, 1), math.log(1.1), requires_grad=True)
    loss, clipfrac, _ = policy_loss(new, old, torch.full((1, 1), 2.0), torch.ones(1, 1), clip_range=0.2)
    loss.backward()
    assert loss.item() == pytest.approx(-2.2)
    assert new.grad.item() == pytest.approx(-2.2)  # d(-A * exp(new - old)) / d new
    assert clipfrac.item() == 0.0


def test_policy_loss_is_pessimistic_a_bad_token_made_likelier_is_not_clipped():
    old = torch.zeros(1, 1)
    new = torch.full((1, 1), math.log(1.5), requires_grad=True)
    loss, clipfrac, _ = policy_loss(new, old, torch.full((1, 1), -2.0), torch.ones(1, 1), clip_range=0.2)
    loss.backward()
    assert loss.item() == pytest.approx(3.0)
    assert new.grad.item() == pytest.approx(3.0)
    assert clipfrac.item() == 0.0


def test_policy_loss_averages_over_real_tokens_only():
    old = torch.zeros(1, 2)
    new = torch.tensor([[math.log(1.1), 5.0]])
    loss, _, _ = policy_loss(new, old, torch.tensor([[2.0, 100.0]]), torch.tensor([[1.0, 0.0]]), clip_range=0.2)
    assert loss.item() == pytest.approx(-2.2)


def test_value_loss_clips_a_value_that_moved_too_far_from_its_rollout_value():
    old, returns, mask = torch.zeros(1, 1), torch.ones(1, 1), torch.ones(1, 1)
    far = torch.full((1, 1), 0.5, requires_grad=True)  # clipped to 0.2: (0.2 - 1)^2 = 0.64 > (0.5 - 1)^2
    loss, clipfrac = value_loss(far, old, returns, mask, clip_range=0.2)
    loss.backward()
    assert loss.item() == pytest.approx(0.5 * 0.64)
    assert clipfrac.item() == 1.0
    assert far.grad.item() == 0.0

    near = torch.full((1, 1), 0.1, requires_grad=True)
    loss, clipfrac = value_loss(near, old, returns, mask, clip_range=0.2)
    loss.backward()
    assert loss.item() == pytest.approx(0.5 * 0.81)
    assert clipfrac.item() == 0.0
    assert near.grad.item() == pytest.approx(0.1 - 1.0)


def test_whiten_gives_mean_0_and_std_1_over_the_masked_entries_and_zero_elsewhere():
    generator = torch.Generator().manual_seed(1)
    values = 3.0 + 5.0 * torch.randn(3, 6, generator=generator)
    mask = prefix_mask([6, 2, 4], 6)
    whitened = whiten(values, mask)
    real = whitened[mask.bool()]
    assert real.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert real.std().item() == pytest.approx(1.0, abs=1e-4)
    assert whitened[~mask.bool()].abs().sum() == 0

    kept = whiten(values, mask, shift_mean=False)[mask.bool()]
    assert kept.mean().item() == pytest.approx(values[mask.bool()].mean().item(), abs=1e-4)
    assert kept.std().item() == pytest.approx(1.0, abs=1e-4)


def test_masked_mean_ignores_padding_and_survives_an_empty_mask():
    values = torch.tensor([[1.0, 3.0, 100.0]])
    assert masked_mean(values, torch.tensor([[1.0, 1.0, 0.0]])).item() == 2.0
    assert masked_mean(values, torch.zeros(1, 3)).item() == 0.0


def test_a_completion_ends_at_its_first_eos_even_when_the_pad_token_is_eos():
    eos = 3
    ids = torch.tensor([[5, 6, 3, 3, 3], [3, 7, 8, 3, 0], [5, 6, 7, 8, 9]])
    assert response_mask(ids, eos).tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]


# ---------------------------------------------------------------- the loop on a toy task


class RecordingHooks(SilentHooks):
    """SilentHooks that also keep the samples, ask the checkpoint's generator, and can stop."""

    def __init__(self, stop_after: int | None = None):
        super().__init__()
        self.stop_after = stop_after
        self.samples: list[list[dict]] = []
        self.paths: list[str] = []
        self.checkpoint_answers: list[list[str]] = []

    def step(self, *, step, total, loss, learning_rate, metrics, samples):
        super().step(step=step, total=total, loss=loss, learning_rate=learning_rate, metrics=metrics, samples=samples)
        self.samples.append(samples)

    def checkpoint(self, *, step, path, generate):
        super().checkpoint(step=step, path=path, generate=generate)
        self.paths.append(path)
        self.checkpoint_answers.append(generate(TOY_ROWS))

    def should_stop(self):
        return self.stop_after is not None and len(self.metrics) >= self.stop_after


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    from training.generators.tiny import build_tiny_policy

    return str(build_tiny_policy(tmp_path_factory.mktemp("ppo") / "policy"))


def toy_config(policy: str, **overrides) -> RLRunConfig:
    # A learning rate far above a real model's: the tiny random policy has everything to learn.
    values = {"algorithm": "ppo", "policy_path": policy, "verifiers": ["math"], "reward_model_id": None,
              "kl_coef": 0.02, "steps": 30, "prompts_per_step": 2, "generations": 8, "learning_rate": 1e-2,
              "max_new_tokens": 4, "temperature": 1.0, "seed": 0, "checkpoint_every": 10, "ppo_epochs": 2}
    return RLRunConfig(**{**values, **overrides})


def test_the_math_verifiers_reward_rises_on_a_fixed_arithmetic_question(tiny_policy, tmp_path):
    config = toy_config(tiny_policy)
    assert config.errors() == {}
    hooks = RecordingHooks()

    outcome = train(config=config, rows=TOY_ROWS, reward=HybridReward(config=config), output_dir=tmp_path,
                    hooks=hooks)

    rewards = [m["reward/math"] for m in hooks.metrics]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > 0.5 and last - first > 0.3, (first, last, rewards)
    assert outcome.steps_done == 30 and not outcome.stopped

    kl = [m["kl"] for m in hooks.metrics]
    assert all(math.isfinite(k) for k in kl)
    assert kl[0] == pytest.approx(0.0, abs=1e-4)  # the first rollout is the reference's own
    assert min(kl) > -0.5 and kl[-1] > 0  # the per-sample estimate may dip just below 0 early on
    assert all(math.isfinite(m["entropy"]) and m["entropy"] > 0 for m in hooks.metrics)
    assert all(1 <= m["length"] <= 4 for m in hooks.metrics)
    assert all(len(samples) == 16 and {s["prompt_id"] for s in samples} == {1} for samples in hooks.samples)


def test_checkpoints_land_every_n_steps_and_at_the_end_with_what_a_resume_needs(tiny_policy, tmp_path):
    config = toy_config(tiny_policy, steps=5, checkpoint_every=2)
    hooks = RecordingHooks()

    outcome = train(config=config, rows=TOY_ROWS, reward=HybridReward(config=config), output_dir=tmp_path,
                    hooks=hooks)

    assert hooks.checkpoints == [2, 4, 5]
    assert hooks.paths == [str(tmp_path / f"checkpoint-{n}") for n in (2, 4, 5)]
    assert outcome.last_checkpoint == str(tmp_path / "checkpoint-5")
    for n in (2, 4, 5):
        names = {p.name for p in (tmp_path / f"checkpoint-{n}").iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json", "value_head.pt", "trainer_state.pt"} <= names
    state = torch.load(tmp_path / "checkpoint-4" / "trainer_state.pt", weights_only=True)
    assert state["step"] == 4 and state["config"] == config.to_dict() and state["optimizer"]["state"]
    assert all(len(answers) == 1 and isinstance(answers[0], str) for answers in hooks.checkpoint_answers)


def test_a_resumed_run_continues_exactly_where_the_checkpoint_left_off(tiny_policy, tmp_path):
    config = toy_config(tiny_policy, steps=4, checkpoint_every=2)
    straight = RecordingHooks()
    train(config=config, rows=TOY_ROWS, reward=HybridReward(config=config), output_dir=tmp_path / "a",
          hooks=straight)

    resumed = RecordingHooks()
    outcome = train(config=config, rows=TOY_ROWS, reward=HybridReward(config=config), output_dir=tmp_path / "b",
                    hooks=resumed, resume_from=str(tmp_path / "a" / "checkpoint-2"))

    assert [m["step"] for m in resumed.metrics] == [3, 4]
    assert [[s["completion"] for s in samples] for samples in resumed.samples] == \
           [[s["completion"] for s in samples] for samples in straight.samples[2:]]
    assert [m["kl"] for m in resumed.metrics] == pytest.approx([m["kl"] for m in straight.metrics[2:]], abs=1e-5)
    assert outcome.steps_done == 4 and outcome.last_checkpoint == str(tmp_path / "b" / "checkpoint-4")


def test_a_stop_request_ends_the_run_cleanly_after_the_step_in_hand(tiny_policy, tmp_path):
    config = toy_config(tiny_policy, steps=10, checkpoint_every=5)
    hooks = RecordingHooks(stop_after=2)

    outcome = train(config=config, rows=TOY_ROWS, reward=HybridReward(config=config), output_dir=tmp_path,
                    hooks=hooks)

    assert outcome.stopped and outcome.steps_done == 2
    assert [m["step"] for m in hooks.metrics] == [1, 2]
    assert outcome.last_checkpoint is None and not list(tmp_path.glob("checkpoint-*"))


def test_rows_are_taken_in_the_order_given_and_wrap_around(tiny_policy, tmp_path):
    rows = [{**TOY_ROWS[0], "prompt_id": n} for n in (1, 2, 3)]
    config = toy_config(tiny_policy, steps=3, prompts_per_step=2, generations=2, checkpoint_every=10)
    hooks = RecordingHooks()

    train(config=config, rows=rows, reward=HybridReward(config=config), output_dir=tmp_path, hooks=hooks)

    assert [[s["prompt_id"] for s in samples] for samples in hooks.samples] == \
           [[1, 1, 2, 2], [3, 3, 1, 1], [2, 2, 3, 3]]


def test_without_a_kl_penalty_no_reference_is_loaded_and_no_kl_is_reported(tiny_policy, tmp_path):
    config = toy_config(tiny_policy, kl_coef=0.0, steps=2, checkpoint_every=10)
    hooks = RecordingHooks()

    train(config=config, rows=TOY_ROWS, reward=HybridReward(config=config), output_dir=tmp_path, hooks=hooks)

    assert [m["kl"] for m in hooks.metrics] == [None, None]
    assert all(math.isfinite(m["ppo/value_loss"]) for m in hooks.metrics)
