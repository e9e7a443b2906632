"""Training configs: dataclasses whose fields carry their help text; a run stores one as JSON.
Pure: no Django, no torch."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
OPTIONAL = {"max_steps": int, "center_rewards_coefficient": float}  # fields that may be None, and their type


@dataclass(frozen=True)
class RewardRunConfig:
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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RewardRunConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        values = {}
        for name, value in data.items():
            optional = name in OPTIONAL
            if value is None or value == "":
                values[name] = None if optional else known[name].default  # a blank form field: the default
                continue
            kind = OPTIONAL[name] if optional else type(known[name].default)
            try:
                if kind is bool and isinstance(value, str):
                    value = value.lower() in ("1", "true", "yes", "on")
                values[name] = kind(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: {value!r} is not a {kind.__name__}") from exc
        return cls(**values)

    @staticmethod
    def help() -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(RewardRunConfig)}
