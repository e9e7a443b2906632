"""What the GRPO and PPO backends share: the hybrid reward, generation, the per-step metrics and
the hooks through which a backend tells the platform what happened. No Django: the worker wraps
the hooks around the database (training/services/rl_runs.py); tests and benchmarks can pass their
own.

A prompt row is the TRL prompt-only shape the set exports, plus the prompt's id:
    {"prompt": [messages], "ground_truth": str | None, "domain": str, "prompt_id": int}
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rewards.formats import prompt_as_text

from ..config import RLRunConfig, _default_weights

VERIFIER_COMPONENTS = ("math", "code", "format")

# (prompt texts, completions) -> one reward-model score each
Scorer = Callable[[Sequence[str], Sequence[str]], Sequence[float]]
# (rows, greedy) -> one completion per row, from the model as it is now
Generator = Callable[[Sequence[dict]], list[str]]


class RLHooks(Protocol):
    def phase(self, text: str) -> None: ...
    def log(self, message: str, level: str = "info") -> None: ...
    def step(self, *, step: int, total: int, loss: float | None, learning_rate: float | None,
             metrics: dict, samples: list[dict]) -> None:
        """After each optimiser step. `metrics` has the keys of `step_metrics`, which the charts and
        monitors read, plus any diagnostics of the backend's own under its prefix (PPO: `ppo/...`);
        `samples` one dict per completion: {"prompt_id", "completion", "reward", "length"}."""
    def checkpoint(self, *, step: int, path: str, generate: Generator) -> None:
        """After a checkpoint is saved; `generate` answers with the policy as it is at `step`."""
    def should_stop(self) -> bool: ...


class SilentHooks:
    """Collects what a backend reports, for tests and the benchmark."""

    def __init__(self):
        self.metrics: list[dict] = []
        self.checkpoints: list[int] = []
        self.messages: list[str] = []

    def phase(self, text): self.messages.append(text)
    def log(self, message, level="info"): self.messages.append(message)
    def step(self, *, step, total, loss, learning_rate, metrics, samples): self.metrics.append({"step": step, **metrics})
    def checkpoint(self, *, step, path, generate): self.checkpoints.append(step)
    def should_stop(self): return False


@dataclass
class RewardBatch:
    total: list[float]
    components: dict[str, list[float | None]] = field(default_factory=dict)
    # The code verifier's hack signals for the monitors: how many gradings it refused (sandbox
    # too weak) and the share of graded code completions with suspicious patterns.
    code_refusals: int = 0
    code_suspicious: float | None = None

    def verifier_values(self) -> list[float]:
        return [v for name in VERIFIER_COMPONENTS for v in self.components.get(name, []) if v is not None]


class HybridReward:
    """The weighted sum of the reward model's score and every verifier that applies to the prompt.
    A verifier that does not cover a prompt says None and adds nothing (TRL's GRPOTrainer treats
    a None the same way: nansum). A completion nothing applies to gets 0."""

    def __init__(self, *, config: RLRunConfig, scorer: Scorer | None = None):
        self.config = config
        self.scorer = scorer
        self.components = (["reward_model"] if scorer is not None else []) + list(config.verifiers)
        weights = {**_default_weights(), **config.reward_weights}  # a partial map keeps the other defaults
        self.weights = {name: float(weights.get(name, 1.0)) for name in self.components}

    def component(self, name: str, rows: Sequence[dict], completions: Sequence[str]) -> list[float | None]:
        if name == "reward_model":
            prompts = [prompt_as_text(row["prompt"]) for row in rows]
            return [float(s) for s in self.scorer(prompts, completions)]
        from rewards.verifiers import code_verdict_of, completion_text, verify

        if name == "code":
            verdicts = [code_verdict_of(completion_text(completion), row,
                                        allow_weak_sandbox=self.config.allow_weak_sandbox)
                        for row, completion in zip(rows, completions)]
            self._code_verdicts = [v for v in verdicts if v is not None]
            return [None if v is None else v.score for v in verdicts]
        return [verify(name, completion, row, format_tags=self.config.format_tags)
                for row, completion in zip(rows, completions)]

    def __call__(self, rows: Sequence[dict], completions: Sequence[str]) -> RewardBatch:
        self._code_verdicts = []
        components = {name: self.component(name, rows, completions) for name in self.components}
        total = [sum(self.weights[name] * values[i] for name, values in components.items() if values[i] is not None)
                 for i in range(len(completions))]
        graded = [v for v in self._code_verdicts if not v.refused]
        return RewardBatch(total=total, components=components,
                           code_refusals=sum(v.refused for v in self._code_verdicts),
                           code_suspicious=sum(bool(v.suspicious) for v in graded) / len(graded) if graded else None)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(values) / len(values) if values else None


def step_metrics(*, batch: RewardBatch, completions: Sequence[str], lengths: Sequence[int],
                 kl: float | None, entropy: float | None) -> dict:
    """One step's row for the charts and the monitors (training/monitors.py reads these keys).
    kl is nats per sequence: the summed per-token KL to the reference, averaged over completions."""
    from ..monitors import text_stats

    stats = text_stats(completions)
    row = {"reward": _mean(batch.total), "verifier": _mean(batch.verifier_values()), "kl": kl,
           "length": _mean(lengths), "hedging": stats["hedging"], "list_rate": stats["list_rate"],
           "chars": stats["chars"], "entropy": entropy,
           "verifier_refusals": batch.code_refusals, "code_suspicious": batch.code_suspicious}
    for name, values in batch.components.items():
        row[f"reward/{name}"] = _mean(values)
    return row


def step_samples(*, rows: Sequence[dict], completions: Sequence[str], batch: RewardBatch,
                 lengths: Sequence[int]) -> list[dict]:
    return [{"prompt_id": row.get("prompt_id"), "completion": completion, "reward": reward, "length": int(length)}
            for row, completion, reward, length in zip(rows, completions, batch.total, lengths)]


def prompt_texts(tokenizer, rows: Sequence[dict]) -> list[str]:
    """Each row's prompt as the policy sees it: its chat template with the generation prompt."""
    if getattr(tokenizer, "chat_template", None):
        return [tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
                for row in rows]
    return [prompt_as_text(row["prompt"]) for row in rows]


def generate(model, tokenizer, rows: Sequence[dict], *, max_new_tokens: int, greedy: bool = True,
             temperature: float = 1.0, batch_size: int = 16) -> list[str]:
    """One completion per row (left-padded batches, special tokens dropped). For answers to read and
    judge (suite, Pre-PPO samples): sampling keeps whatever top-p or repetition penalty the model's
    generation config sets, so do not compute PPO log-probs from it (ppo.sample samples plainly)."""
    import torch

    texts = prompt_texts(tokenizer, rows)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out: list[str] = []
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start: start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            with torch.no_grad():
                ids = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=not greedy,
                                     temperature=temperature if not greedy else None, top_k=0 if not greedy else None,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            width = batch["input_ids"].shape[1]
            out.extend(tokenizer.batch_decode(ids[:, width:], skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return [text.strip() for text in out]


def load_policy(path: str, device: str = "cpu"):
    """A causal LM and its tokenizer, ready to generate (pad token set, left padding)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.model_input_names = ["input_ids", "attention_mask"]  # Llama's generate rejects token_type_ids
    model = AutoModelForCausalLM.from_pretrained(path).to(device)
    return model, tokenizer
