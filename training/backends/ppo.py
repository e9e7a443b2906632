"""Our compact PPO for language models: clipped policy objective, a value head on the policy's own
trunk, GAE, and a per-token KL penalty to a frozen reference. The worker calls `train`; the tensor
functions above it are pure and tested one by one (tests/training/test_ppo.py).

Why our own and not a library's. TRL dropped `PPOTrainer` (1.x has neither `trl.PPOTrainer` nor a
`trl.experimental.ppo`), so depending on TRL would mean pinning an old release against the
transformers our GRPO and reward-model runs need. OpenRLHF and verl maintain real PPO, but they
are Ray + vLLM + GPU systems: they are our scale-out path (`engine` = openrlhf / verl in the run
config), not something a worker can call in-process, let alone a test on a 2-core CPU. What PPO
needs on top of `rl_common` is a few hundred lines, written here in the shape of the old TRL
`PPOTrainer` and of Huang et al. 2024, "The N+ implementation details of RLHF with PPO": logprobs
recomputed from the sampling distribution (logits / temperature), everything after the first EOS
masked, the sequence score on the last real token and -kl_coef * (logp - ref_logp) on every token,
GAE over the completion, whitened advantages, clipped policy and value losses, dropout off.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import RLRunConfig
from .rl_common import HybridReward, RLHooks, generate, load_policy, prompt_texts, step_metrics, step_samples

VALUE_HEAD_FILE = "value_head.pt"
TRAINER_STATE_FILE = "trainer_state.pt"
MAX_GRAD_NORM = 1.0


# ---------------------------------------------------------------- the pure part


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` where `mask` is 1 (over everything, or along `dim`); 0 where nothing is."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """`values` scaled to unit (unbiased) standard deviation over the masked entries, and centred
    on 0 unless `shift_mean` is False (then the mean is kept: TRL's `masked_whiten`). Entries
    outside the mask come back as 0, so they cannot leak into a loss."""
    mask = mask.to(values.dtype)
    count = mask.sum()
    mean = (values * mask).sum() / count.clamp(min=1)
    # Bessel's correction, as TRL has it; one entry alone has no spread to divide by.
    variance = (((values - mean) * mask) ** 2).sum() / (count - 1).clamp(min=1)
    whitened = (values - mean) * torch.rsqrt(variance + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def per_token_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                      mask: torch.Tensor, kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The reward of every completion token: -kl_coef * (logp - ref_logp) on each real token, plus
    the sequence's score on its last real token; 0 on padding. Also each sequence's KL to the
    reference, the summed per-token log-ratio in nats (the k1 estimator: its expectation under the
    policy's own samples is the KL, a single sample may be negative).

    scores [B], logprobs / ref_logprobs / mask [B, T] -> (rewards [B, T], kl [B])."""
    mask = mask.to(logprobs.dtype)
    log_ratio = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * log_ratio
    width = mask.shape[1]
    last = width - 1 - mask.flip(1).argmax(1)  # the last 1 of each row, wherever the mask has holes
    has_tokens = mask.sum(1) > 0
    rows = torch.arange(mask.shape[0], device=mask.device)
    rewards[rows, last] += scores.to(rewards.dtype) * has_tokens.to(rewards.dtype)
    return rewards, log_ratio.sum(1)


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) along each completion:
    delta_t = r_t + gamma * V_{t+1} - V_t, A_t = delta_t + gamma * lam * A_{t+1}, with V and A
    zero after the last real token (the episode ends there). Returns (advantages, returns =
    advantages + values), both zero on padding.

    The mask must be a prefix per row (the tokens up to and including the first EOS), which is
    what a rollout gives: zeroing the padding is then the same as stopping the recursion at the
    end of each sequence."""
    mask = mask.to(values.dtype)
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])
    width = values.shape[1]
    for t in reversed(range(width)):
        next_value = values[:, t + 1] if t + 1 < width else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def policy_loss(new_logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, clip_range: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate (Schulman et al. 2017), as a loss to minimise, averaged over real
    tokens: max(-A * r, -A * clip(r, 1 - eps, 1 + eps)) with r = exp(new - old). Where the clip
    wins the token gives no gradient, which is the point: no step beyond the trust region.
    Also the share of tokens clipped and the approximate KL between the old and new policy
    (0.5 * mean squared log-ratio, TRL's `approxkl`), both detached."""
    log_ratio = new_logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).to(new_logprobs.dtype), mask).detach()
    approx_kl = 0.5 * masked_mean(log_ratio.detach() ** 2, mask)
    return loss, clipfrac, approx_kl


def value_loss(new_values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor, clip_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The clipped value loss of PPO2 / TRL: 0.5 * max((V - R)^2, (V_clipped - R)^2), V_clipped
    within clip_range of the value at rollout time, averaged over real tokens; and the share of
    tokens where the clipped term won (detached)."""
    clipped_values = old_values + torch.clamp(new_values - old_values, -clip_range, clip_range)
    unclipped_error = (new_values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask)
    clipfrac = masked_mean((clipped_error > unclipped_error).to(new_values.dtype), mask).detach()
    return loss, clipfrac


class ValueHead(nn.Module):
    """One linear layer on the policy's last hidden state: the critic shares the policy's trunk,
    as TRL's old AutoModelForCausalLMWithValueHead did. A separate critic (Huang et al. start it
    from the reward model) would double the memory and the forward passes; sharing costs some
    interference, since the value loss moves the policy's features, which value_coef keeps small.
    Zero at the start, so the first advantages are the returns themselves rather than noise."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.summary = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.summary.weight)
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.summary(hidden.to(self.summary.weight.dtype)).squeeze(-1)


# ---------------------------------------------------------------- rollouts


@dataclass
class Rollout:
    """A batch of prompts (left-padded) and their sampled completions (right-padded after EOS)."""

    query_ids: torch.Tensor  # [B, P]
    query_mask: torch.Tensor  # [B, P]
    response_ids: torch.Tensor  # [B, T]
    response_mask: torch.Tensor  # [B, T], 1 up to and including the first EOS


def response_mask(response_ids: torch.Tensor, eos_token_id: int | None) -> torch.Tensor:
    """1 on every token up to and including the first EOS, 0 after it. By position, not by
    comparing with the pad token: many tokenizers pad with EOS, and a policy may sample the pad id."""
    if eos_token_id is None:
        return torch.ones_like(response_ids, dtype=torch.float32)
    is_eos = response_ids == eos_token_id
    # EOS tokens strictly before each position: 0 up to and including the first one.
    before = torch.cumsum(is_eos.long(), 1) - is_eos.long()
    return (before == 0).to(torch.float32)


def sample(policy, tokenizer, rows: Sequence[dict], *, max_new_tokens: int, temperature: float) -> Rollout:
    """One sampled completion per row from softmax(logits / temperature), nothing else: every other
    warper a model's generation_config may carry (top-k, top-p, repetition penalty) is switched
    off, because the logprobs PPO computes afterwards must be those of the distribution sampled."""
    device = next(policy.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        query = tokenizer(prompt_texts(tokenizer, rows), return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
    finally:
        tokenizer.padding_side = side
    with torch.no_grad():
        ids = policy.generate(**query, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                              repetition_penalty=1.0, max_new_tokens=max_new_tokens,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    response_ids = ids[:, query["input_ids"].shape[1]:]
    return Rollout(query_ids=query["input_ids"], query_mask=query["attention_mask"], response_ids=response_ids,
                   response_mask=response_mask(response_ids, tokenizer.eos_token_id).to(device))


def completions_of(tokenizer, rollout: Rollout) -> list[str]:
    """The completions as text, cut at the first EOS (special tokens dropped)."""
    texts = []
    for ids, mask in zip(rollout.response_ids, rollout.response_mask):
        texts.append(tokenizer.decode(ids[: int(mask.sum())], skip_special_tokens=True).strip())
    return texts


def forward(model, rollout: Rollout, *, temperature: float, value_head: ValueHead | None = None,
            with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Per completion token: the logprob of the token under softmax(logits / temperature), the
    entropy of that distribution (if asked) and the value of the state before the token (if a
    head is given). Positions follow the attention mask, as `generate` numbers them."""
    input_ids = torch.cat([rollout.query_ids, rollout.response_ids], 1)
    attention = torch.cat([rollout.query_mask, rollout.response_mask.to(rollout.query_mask.dtype)], 1)
    position_ids = (attention.cumsum(1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention, position_ids=position_ids,
                output_hidden_states=value_head is not None, use_cache=False)
    start = rollout.query_ids.shape[1] - 1  # the position that predicts the first completion token
    logits = out.logits[:, start:-1].float() / temperature
    all_logprobs = torch.log_softmax(logits, -1)
    logprobs = all_logprobs.gather(-1, rollout.response_ids.unsqueeze(-1)).squeeze(-1)
    entropy = -(all_logprobs.exp() * all_logprobs).sum(-1) if with_entropy else None
    values = value_head(out.hidden_states[-1][:, start:-1]) if value_head is not None else None
    return logprobs, entropy, values


# ---------------------------------------------------------------- the loop


@dataclass
class PPOOutcome:
    steps_done: int
    stopped: bool
    last_checkpoint: str | None


def rows_for_step(rows: Sequence[dict], step: int, per_step: int) -> list[dict]:
    """Step `step` (from 1) takes the next `per_step` rows in the order given, wrapping around:
    the caller's order is kept because it may be a curriculum. A function of the step alone, so
    a resumed run picks up exactly where it stopped."""
    start = (step - 1) * per_step
    return [rows[(start + i) % len(rows)] for i in range(per_step)]


def _rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    # As plain lists: torch.load(weights_only=True) refuses numpy arrays.
    state["numpy"] = [kind, keys.tolist(), pos, has_gauss, gauss]
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, *, policy, tokenizer, value_head: ValueHead, optimizer, step: int,
                    config: RLRunConfig) -> Path:
    """Everything `train(resume_from=path)` needs: the policy and its tokenizer (a model directory
    the suite and the registry can load as they are), the value head, the optimiser, the step,
    the config and the random state."""
    path.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    torch.save(value_head.state_dict(), path / VALUE_HEAD_FILE)
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "config": config.to_dict(), "rng": _rng_state()},
               path / TRAINER_STATE_FILE)
    return path


def train(*, config: RLRunConfig, rows: Sequence[dict], reward: HybridReward, output_dir: str | Path,
          hooks: RLHooks, device: str = "cpu", resume_from: str | None = None) -> PPOOutcome:
    """Run PPO on `rows` (prompt rows, see rl_common) for `config.steps` steps, checkpointing to
    output_dir/checkpoint-{step}; from `resume_from` (a checkpoint of this function) if given.

    A step: sample `generations` completions for each of the next `prompts_per_step` rows, score
    them (reward, reference, critic), turn the scores into per-token rewards and GAE advantages,
    then `ppo_epochs` passes over the whole batch as one minibatch. AdamW at a constant
    learning_rate: PPO's clipping already bounds each step, and a constant rate makes a resumed
    run the same run whatever `steps` it is given."""
    from transformers import set_seed

    if not rows:
        raise ValueError("PPO needs at least one prompt row.")
    set_seed(config.seed)
    output_dir = Path(output_dir)

    hooks.phase("loading the policy")
    policy, tokenizer = load_policy(resume_from or config.policy_path, device)
    # Dropout off for good: the old and new logprobs of a token must come from the same function.
    policy.eval()
    value_head = ValueHead(policy.config.get_text_config().hidden_size).to(device)
    reference = None
    if config.kl_coef > 0:
        # From the config, not the checkpoint: a resumed run keeps its KL anchored to where it began.
        reference, _ = load_policy(config.reference, device)
        reference.eval().requires_grad_(False)
    parameters = [*policy.parameters(), *value_head.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate)

    step = 0
    last_checkpoint: str | None = None
    if resume_from:
        checkpoint = Path(resume_from)
        value_head.load_state_dict(torch.load(checkpoint / VALUE_HEAD_FILE, map_location=device, weights_only=True))
        state = torch.load(checkpoint / TRAINER_STATE_FILE, map_location="cpu", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        _set_rng_state(state["rng"])
        last_checkpoint = str(checkpoint)
        hooks.log(f"Resumed from {checkpoint.name} at step {step}.")

    batch_size = config.prompts_per_step * config.generations
    hooks.log(f"PPO: {config.steps} steps of {config.prompts_per_step} prompts x {config.generations} completions, "
              f"{config.ppo_epochs} epoch(s) each; {len(rows)} prompts; "
              + (f"KL to {config.reference} at {config.kl_coef}." if reference is not None else "no KL penalty."))
    hooks.phase("training")
    stopped = False
    while step < config.steps:
        if hooks.should_stop():
            stopped = True
            hooks.log(f"Stopped at step {step} of {config.steps}.", "warning")
            break
        step += 1
        step_rows = [row for row in rows_for_step(rows, step, config.prompts_per_step)
                     for _ in range(config.generations)]

        # Experience: sample, then score every token with the policy, the reference and the critic.
        rollout = sample(policy, tokenizer, step_rows, max_new_tokens=config.max_new_tokens,
                         temperature=config.temperature)
        mask = rollout.response_mask
        with torch.no_grad():
            old_logprobs, entropy, old_values = forward(policy, rollout, temperature=config.temperature,
                                                        value_head=value_head, with_entropy=True)
            ref_logprobs = (forward(reference, rollout, temperature=config.temperature)[0]
                            if reference is not None else old_logprobs)
        completions = completions_of(tokenizer, rollout)
        batch = reward(step_rows, completions)
        scores = torch.tensor(batch.total, dtype=torch.float32, device=mask.device)
        rewards, kl = per_token_rewards(scores, old_logprobs, ref_logprobs, mask, config.kl_coef)
        advantages, returns = gae(rewards, old_values, mask, config.gamma, config.gae_lambda)
        advantages = whiten(advantages, mask)

        # Optimisation: the whole batch is one minibatch, ppo_epochs times.
        totals = {"loss": 0.0, "ppo/policy_loss": 0.0, "ppo/value_loss": 0.0, "ppo/clipfrac": 0.0,
                  "ppo/value_clipfrac": 0.0, "ppo/approx_kl": 0.0}
        for _ in range(config.ppo_epochs):
            new_logprobs, _, new_values = forward(policy, rollout, temperature=config.temperature,
                                                  value_head=value_head)
            pg_loss, pg_clipfrac, approx_kl = policy_loss(new_logprobs, old_logprobs, advantages, mask,
                                                          config.clip_range)
            vf_loss, vf_clipfrac = value_loss(new_values, old_values, returns, mask, config.clip_range)
            loss = pg_loss + config.value_coef * vf_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, MAX_GRAD_NORM)
            optimizer.step()
            for key, value in (("loss", loss), ("ppo/policy_loss", pg_loss), ("ppo/value_loss", vf_loss),
                               ("ppo/clipfrac", pg_clipfrac), ("ppo/value_clipfrac", vf_clipfrac),
                               ("ppo/approx_kl", approx_kl)):
                totals[key] += float(value.detach()) / config.ppo_epochs

        lengths = [int(n) for n in mask.sum(1).tolist()]
        metrics = step_metrics(batch=batch, completions=completions, lengths=lengths,
                               kl=float(kl.mean()) if reference is not None else None,
                               entropy=float(masked_mean(entropy, mask)))
        metrics.update({key: value for key, value in totals.items() if key != "loss"})
        hooks.step(step=step, total=config.steps, loss=totals["loss"], learning_rate=config.learning_rate,
                   metrics=metrics,
                   samples=step_samples(rows=step_rows, completions=completions, batch=batch, lengths=lengths))

        if step % config.checkpoint_every == 0 or step == config.steps:
            path = save_checkpoint(output_dir / f"checkpoint-{step}", policy=policy, tokenizer=tokenizer,
                                   value_head=value_head, optimizer=optimizer, step=step, config=config)
            last_checkpoint = str(path)
            hooks.checkpoint(step=step, path=last_checkpoint,
                             generate=lambda prompt_rows: generate(policy, tokenizer, prompt_rows,
                                                                   max_new_tokens=config.max_new_tokens))
    if not stopped:
        hooks.log(f"PPO done: {step} steps, {batch_size} completions each.")
    return PPOOutcome(steps_done=step, stopped=stopped, last_checkpoint=last_checkpoint)
