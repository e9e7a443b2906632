"""Training configs: dataclasses whose fields carry their help text; a run stores one as JSON.
Pure: no Django, no torch."""
from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

MIXED_PRECISION = ("auto", "no", "bf16", "fp16")


class JsonConfig:
    """What every config dataclass shares (runs, monitor thresholds): JSON in and out, and each
    field's help text. Unknown keys are refused: a misspelt setting silently ignored would be a
    setting silently off."""

    OPTIONAL: dict[str, type] = {}  # fields that may be None, and their type
    NAMED = "config field"  # what an unknown key is called in the error

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        known = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown {cls.NAMED}(s): {', '.join(sorted(unknown))}")
        values = {}
        for name, value in data.items():
            optional = name in cls.OPTIONAL
            default = known[name].default_factory() if known[name].default_factory is not MISSING else known[name].default
            if value is None or value == "":
                values[name] = None if optional else default  # a blank form field: the default
                continue
            kind = cls.OPTIONAL[name] if optional else type(default)
            try:
                values[name] = _coerce(kind, value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: {value!r} is not a {kind.__name__}") from exc
        return cls(**values)

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}


def _coerce(kind: type, value):
    if kind is bool and isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    if kind is list:
        if isinstance(value, str):  # a form field: comma separated
            return [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            raise TypeError(value)
        return list(value)
    if kind is dict:
        if isinstance(value, str):  # a form field: "name=1.0, other=0.5"
            pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
            return {k.strip(): float(v) for k, v in pairs}
        if not isinstance(value, dict):
            raise TypeError(value)
        return dict(value)
    return kind(value)


@dataclass(frozen=True)
class RewardRunConfig(JsonConfig):
    OPTIONAL = {"max_steps": int, "center_rewards_coefficient": float}

    base_model: str = field(default="", metadata={
        "help": "A local Hugging Face model directory; it is loaded as a sequence-classification model with one "
                "label (a fresh scalar head on an encoder or a causal LM)."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the training split."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimiser steps (overrides epochs)."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak AdamW learning rate (linear decay)."})
    batch_size: int = field(default=16, metadata={"help": "Pairs per device and step."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Steps whose gradients add up before an update."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Share of steps spent warming the learning rate up."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    max_length: int = field(default=512, metadata={
        "help": "Longest chosen or rejected sequence in tokens; TRL leaves longer pairs out of training (the log says how "
                "many). Keep it within the backbone's positions (512 for MiniLM/BERT)."})
    use_margin: bool = field(default=True, metadata={
        "help": "Subtract the pair's margin (from the annotators' strength) inside the log-sigmoid."})
    center_rewards_coefficient: float | None = field(default=None, metadata={
        "help": "Reward centring (Eisenstein et al. 2023): penalise the squared mean reward; 0.01 is usual."})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute activations in the backward pass: less memory, about a third slower. Off by default: "
                "a reward-model backbone that fits is faster without it."})
    mixed_precision: str = field(default="auto", metadata={
        "help": "auto: bf16 on a GPU that has it, else fp16 on GPU; full precision on CPU. Or no, bf16, fp16."})
    checkpoint_every: int = field(default=200, metadata={"help": "Save a resumable checkpoint every N steps."})
    keep_checkpoints: int = field(default=2, metadata={"help": "How many of the newest checkpoints to keep."})
    eval_batch_size: int = field(default=64, metadata={"help": "Responses scored at once in the evaluation."})
    multi_gpu: bool = field(default=True, metadata={
        "help": "With more than one GPU on the machine, train on all of them through `accelerate launch`."})
    seed: int = field(default=0, metadata={"help": "Fixes the head's initialisation and the data order."})
    resume_from: str = field(default="", metadata={"help": "A checkpoint directory of an earlier run to continue from."})

    def errors(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if not self.base_model:
            out["base_model"] = "Give a local model directory."
        elif not (Path(self.base_model) / "config.json").is_file():
            out["base_model"] = f"{self.base_model} is not a Hugging Face model directory (no config.json there)."
        if not self.epochs > 0:
            out["epochs"] = "Must be above 0."
        if self.max_steps is not None and self.max_steps < 1:
            out["max_steps"] = "Must be at least 1 (or left empty)."
        if not 0 < self.learning_rate < 1:
            out["learning_rate"] = "Must be between 0 and 1."
        for name in ("batch_size", "gradient_accumulation_steps", "checkpoint_every", "keep_checkpoints",
                     "eval_batch_size"):
            if getattr(self, name) < 1:
                out[name] = "Must be at least 1."
        if self.max_length < 8:
            out["max_length"] = "Must be at least 8 tokens."
        if not 0 <= self.warmup_ratio < 1:
            out["warmup_ratio"] = "Must be in [0, 1)."
        if self.mixed_precision not in MIXED_PRECISION:
            out["mixed_precision"] = f"Use one of {', '.join(MIXED_PRECISION)}."
        if self.center_rewards_coefficient is not None and self.center_rewards_coefficient < 0:
            out["center_rewards_coefficient"] = "Must not be negative."
        if self.resume_from and not Path(self.resume_from).is_dir():
            out["resume_from"] = f"No checkpoint directory at {self.resume_from}."
        return out


@dataclass(frozen=True)
class GenerativeJudgeConfig(JsonConfig):
    """A generative judge (RM-R1 style): a causal LM fine-tuned with TRL's SFT on the set's rm-r1
    export (judge prompt -> rubric, the annotators' rationales as the evaluation, the verdict),
    then evaluated on the held-out split in both A/B orders and registered as a judge."""

    OPTIONAL = {"max_steps": int}

    base_model: str = field(default="", metadata={
        "help": "A local Hugging Face causal LM directory (an instruct model with a chat template whose assistant "
                "turn ends in its end-of-turn token)."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the training split."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimiser steps (overrides epochs)."})
    learning_rate: float = field(default=1e-5, metadata={"help": "Peak AdamW learning rate (linear decay)."})
    batch_size: int = field(default=4, metadata={"help": "Examples per device and step."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Steps whose gradients add up before an update."})
    warmup_ratio: float = field(default=0.03, metadata={"help": "Share of steps spent warming the learning rate up."})
    max_length: int = field(default=2048, metadata={
        "help": "Longest judge prompt plus target, in tokens. Longer examples are left out of training (the log says "
                "how many): cutting one would keep its rubric and lose its verdict."})
    max_new_tokens: int = field(default=256, metadata={
        "help": "Evaluation: tokens the judge may write (rubric and evaluation) before its verdict is read."})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute activations in the backward pass: less memory, about a third slower. On for billion-"
                "parameter backbones on one GPU."})
    mixed_precision: str = field(default="auto", metadata={
        "help": "auto: bf16 on a GPU that has it, else fp16 on GPU; full precision on CPU. Or no, bf16, fp16."})
    checkpoint_every: int = field(default=200, metadata={"help": "Save a checkpoint every N steps."})
    keep_checkpoints: int = field(default=1, metadata={"help": "How many of the newest checkpoints to keep."})
    seed: int = field(default=0, metadata={"help": "Fixes the data order and sampling."})
    judge_name: str = field(default="", metadata={
        "help": "The name the judge is registered under. Empty: \"<set name> generative judge v<run id>\"."})

    def errors(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if not self.base_model:
            out["base_model"] = "Give a local causal LM directory."
        elif not (Path(self.base_model) / "config.json").is_file():
            out["base_model"] = f"{self.base_model} is not a Hugging Face model directory (no config.json there)."
        # `not x > 0` rather than `x <= 0` so that NaN is refused too.
        if not 0 < self.epochs < float("inf"):
            out["epochs"] = "Must be above 0."
        if self.max_steps is not None and self.max_steps < 1:
            out["max_steps"] = "Must be at least 1 (or left empty)."
        if not 0 < self.learning_rate < 1:
            out["learning_rate"] = "Must be between 0 and 1."
        for name in ("batch_size", "gradient_accumulation_steps", "max_new_tokens", "checkpoint_every",
                     "keep_checkpoints"):
            if getattr(self, name) < 1:
                out[name] = "Must be at least 1."
        if self.max_length < 16:
            out["max_length"] = "Must be at least 16 tokens."
        if not 0 <= self.warmup_ratio < 1:
            out["warmup_ratio"] = "Must be in [0, 1)."
        if self.mixed_precision not in MIXED_PRECISION:
            out["mixed_precision"] = f"Use one of {', '.join(MIXED_PRECISION)}."
        if len(self.judge_name) > 100:
            out["judge_name"] = "At most 100 characters."
        return out


ALGORITHMS = ("grpo", "ppo")
ENGINES = ("local", "openrlhf", "verl")
REWARD_COMPONENTS = ("reward_model", "math", "code", "format")
VERIFIER_NAMES = ("math", "code", "format")


def _default_weights() -> dict:
    return {"reward_model": 1.0, "math": 1.0, "code": 1.0, "format": 0.2}


@dataclass(frozen=True)
class RLRunConfig(JsonConfig):
    """A policy-optimisation run (GRPO or PPO). The reward is hybrid: the weighted sum of the
    reward model's score and of every verifier that applies to the prompt."""

    OPTIONAL = {"reward_model_id": int}

    algorithm: str = field(default="grpo", metadata={
        "help": "grpo: TRL's GRPOTrainer (group-relative advantages, no value model). ppo: our compact PPO "
                "(clipped objective, value head, GAE, per-token KL penalty)."})
    policy_path: str = field(default="", metadata={"help": "The starting policy: a local Hugging Face causal LM directory."})
    reference_path: str = field(default="", metadata={
        "help": "The KL reference: a causal LM directory with the policy's tokenizer. Empty: the policy's starting point."})
    reward_model_id: int | None = field(default=None, metadata={
        "help": "A reward model from the registry. It must be ready, or selected with an override reason. "
                "Empty: verifiers only."})
    verifiers: list = field(default_factory=lambda: list(VERIFIER_NAMES), metadata={
        "help": "Which verifiers add to the reward: math (final answer against ground truth), code (tests run in a "
                "sandbox), format (required tags). Each returns 'not applicable' for prompts it does not cover."})
    reward_weights: dict = field(default_factory=_default_weights, metadata={
        "help": "Weight of each reward component: reward_model, math, code, format."})
    allow_weak_sandbox: bool = field(default=False, metadata={
        "help": "Let the code verifier run where the sandbox is weaker than required (no bubblewrap view, no "
                "size-limited disk, ...). Off: such a machine refuses to grade code, and the run page says so."})
    format_tags: list = field(default_factory=list, metadata={
        "help": "Tags the format check requires in every completion, e.g. think, answer. Empty: no format check."})
    kl_coef: float = field(default=0.05, metadata={
        "help": "KL penalty coefficient (GRPO's beta; PPO's per-token penalty). KL is measured against the "
                "reference only when this is above 0."})
    steps: int = field(default=50, metadata={"help": "Optimiser steps; each samples prompts_per_step prompts."})
    prompts_per_step: int = field(default=2, metadata={"help": "Prompts sampled per step."})
    generations: int = field(default=4, metadata={"help": "Completions generated per prompt (GRPO's group size)."})
    learning_rate: float = field(default=1e-6, metadata={"help": "Peak AdamW learning rate."})
    max_new_tokens: int = field(default=64, metadata={"help": "Longest completion, in tokens."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature for rollouts."})
    seed: int = field(default=0, metadata={"help": "Fixes sampling, prompt order and initialisation."})
    checkpoint_every: int = field(default=10, metadata={
        "help": "Save a checkpoint every N steps; the behavioural suite runs on each."})
    suite_per_dimension: int = field(default=8, metadata={
        "help": "Behavioural suite prompts per behaviour dimension (domain), taken from the set's held-out split."})
    rubric_raters: int = field(default=1, metadata={
        "help": "At each checkpoint the suite's answers, and the baseline's, go to people as rubric evaluations "
                "(blind, mixed together) when the spec has a rubric for the dimension: this many people judge each "
                "answer. 0: not sent (the run page can still send a checkpoint)."})
    hardest_fraction: float = field(default=1.0, metadata={
        "help": "Pre-PPO prompt selection: keep this lowest-scoring fraction of prompts per domain (reward-model "
                "scores of the starting policy's samples, z-scored within each domain). 1.0 keeps all."})
    selection_samples: int = field(default=2, metadata={"help": "Pre-PPO: samples per candidate prompt."})
    curriculum: bool = field(default=False, metadata={"help": "Put math and code prompts first."})
    ppo_epochs: int = field(default=2, metadata={"help": "PPO: passes over each rollout batch."})
    clip_range: float = field(default=0.2, metadata={"help": "PPO: clipping of the probability ratio (and of the value)."})
    value_coef: float = field(default=0.1, metadata={"help": "PPO: weight of the value loss."})
    gamma: float = field(default=1.0, metadata={"help": "PPO: discount."})
    gae_lambda: float = field(default=0.95, metadata={"help": "PPO: GAE lambda."})
    engine: str = field(default="local", metadata={
        "help": "local: this worker trains. openrlhf or verl: write that engine's data and command, submit it to the "
                "Ray cluster at ray_address and track the job."})
    ray_address: str = field(default="", metadata={"help": "The Ray dashboard address, e.g. http://head:8265."})
    nodes: int = field(default=1, metadata={"help": "Ray engines: nodes."})
    gpus_per_node: int = field(default=8, metadata={"help": "Ray engines: GPUs per node."})

    @property
    def reference(self) -> str:
        return self.reference_path or self.policy_path

    def errors(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.algorithm not in ALGORITHMS:
            out["algorithm"] = f"Use one of {', '.join(ALGORITHMS)}."
        if self.engine not in ENGINES:
            out["engine"] = f"Use one of {', '.join(ENGINES)}."
        for name in ("policy_path", "reference_path"):
            path = getattr(self, name)
            if name == "policy_path" and not path:
                out[name] = "Give a local causal LM directory."
            elif path and not (Path(path) / "config.json").is_file():
                out[name] = f"{path} is not a Hugging Face model directory (no config.json there)."
        unknown = [v for v in self.verifiers if v not in VERIFIER_NAMES]
        if unknown:
            out["verifiers"] = f"Unknown verifier(s) {', '.join(unknown)}; use {', '.join(VERIFIER_NAMES)}."
        bad = [k for k in self.reward_weights if k not in REWARD_COMPONENTS]
        if bad:
            out["reward_weights"] = f"Unknown component(s) {', '.join(bad)}; use {', '.join(REWARD_COMPONENTS)}."
        elif any(not isinstance(w, (int, float)) or not 0 <= w < float("inf") for w in self.reward_weights.values()):
            out["reward_weights"] = "Weights must be numbers of at least 0."
        if "format" in self.verifiers and self.format_tags and not all(
                isinstance(t, str) and t.isidentifier() for t in self.format_tags):
            out["format_tags"] = "Tags are plain names such as answer or think."
        if self.reward_model_id is None and not self.verifiers:
            out["verifiers"] = "With no reward model, at least one verifier must give the reward."
        # `not 0 <= x` rather than `x < 0` so that NaN is refused too.
        if not 0 <= self.kl_coef < float("inf"):
            out["kl_coef"] = "Must not be negative."
        for name in ("steps", "prompts_per_step", "max_new_tokens", "checkpoint_every", "suite_per_dimension",
                     "selection_samples", "ppo_epochs", "nodes", "gpus_per_node"):
            if getattr(self, name) < 1:
                out[name] = "Must be at least 1."
        if not 0 <= self.rubric_raters <= 5:
            out["rubric_raters"] = "Must be 0 (off) to 5."
        if self.generations < 2:
            out["generations"] = "Must be at least 2 (GRPO compares completions within a group)."
        if not 0 < self.learning_rate < 1:
            out["learning_rate"] = "Must be between 0 and 1."
        if not self.temperature > 0:
            out["temperature"] = "Must be above 0."
        if not 0 < self.hardest_fraction <= 1:
            out["hardest_fraction"] = "Must be in (0, 1]."
        if not 0 < self.clip_range < 1:
            out["clip_range"] = "Must be between 0 and 1."
        if not 0 <= self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            out["gamma" if not 0 <= self.gamma <= 1 else "gae_lambda"] = "Must be in [0, 1]."
        if self.engine != "local" and not self.ray_address:
            out["ray_address"] = "A Ray engine needs the cluster's dashboard address."
        return out
