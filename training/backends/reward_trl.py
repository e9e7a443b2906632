"""Train a Bradley-Terry reward model with TRL's RewardTrainer, and score responses with it.

No Django: the worker (training/reward_run.py), `accelerate launch` (training/launch.py) and the
benchmark (bench/reward_model.py) call the same two functions, `train` and `score`, and hear about
progress through a `Reporter`.

TRL does the training: its loss (-log sigmoid(r_chosen - r_rejected - margin), optional reward
centring), its collator and the Trainer's loop, checkpoints and resumption. We tokenize ourselves,
because TRL's own preprocessing would cost us three things: it *drops* every pair longer than
max_length (a long prompt would silently remove pairs from training), it tokenizes row by row, and
the evaluation must score a response exactly as training saw it. So a pair is encoded once, here,
as the tokenizer's pair encoding (prompt, response), truncating the longer side, ending in EOS, and
handed to TRL as `chosen_ids`/`rejected_ids`, which it takes as they are.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import RewardRunConfig

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RECIPE_FILE = "prefstudio_encoding.json"


class Reporter(Protocol):
    def phase(self, text: str) -> None: ...
    def log(self, message: str, level: str = "info") -> None: ...
    def progress(self, *, step: int, total: int, loss: float | None, learning_rate: float | None,
                 pairs_per_s: float | None, eta_seconds: float | None, metric: bool, values: dict) -> None: ...
    def checkpoint(self, *, step: int, path: str) -> None: ...
    def should_stop(self) -> bool: ...


class SilentReporter:
    """For the benchmark and the other ranks of a multi-GPU run."""

    def phase(self, text): pass
    def log(self, message, level="info"): pass
    def progress(self, **kw): pass
    def checkpoint(self, **kw): pass
    def should_stop(self): return False


@dataclass
class DevicePlan:
    device: str  # "cuda" or "cpu"
    gpus: int
    bf16: bool
    fp16: bool

    @property
    def label(self) -> str:
        precision = "bf16" if self.bf16 else "fp16" if self.fp16 else "fp32"
        where = "cpu" if self.device == "cpu" else ("cuda" if self.gpus == 1 else f"cuda x {self.gpus}")
        return f"{where} ({precision})"


def device_plan(mixed_precision: str = "auto") -> DevicePlan:
    """CUDA when there is one, else the CPU; mixed precision only on a GPU."""
    import torch

    if not torch.cuda.is_available():
        return DevicePlan("cpu", 0, False, False)
    gpus = torch.cuda.device_count()
    if mixed_precision == "auto":
        bf16 = torch.cuda.is_bf16_supported()
        return DevicePlan("cuda", gpus, bf16, not bf16)
    return DevicePlan("cuda", gpus, mixed_precision == "bf16", mixed_precision == "fp16")


# ---------------------------------------------------------------- encoding


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.eos_token is None:
        # BERT-style tokenizers have no EOS; their [SEP] ends every sequence already.
        tokenizer.eos_token = tokenizer.sep_token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def encode(tokenizer, prompts: Sequence[str], responses: Sequence[str], max_length: int) -> tuple[list[list[int]], int]:
    """Token ids of each (prompt, response), ending in EOS, at most max_length long; and how many
    had to be truncated."""
    batch = tokenizer(list(prompts), list(responses), truncation="longest_first", max_length=max_length)
    if batch.encodings is not None:  # fast tokenizers say what they cut off
        truncated = sum(1 for e in batch.encodings if e.overflowing)
    else:
        full = tokenizer(list(prompts), list(responses))["input_ids"]
        truncated = sum(1 for a, b in zip(batch["input_ids"], full) if len(a) < len(b))
    eos = tokenizer.eos_token_id
    out = []
    for ids in batch["input_ids"]:
        if eos is not None and (not ids or ids[-1] != eos):
            ids = ids[: max_length - 1] + [eos]
        out.append(ids)
    return out, truncated


# ---------------------------------------------------------------- training


@dataclass
class TrainOutcome:
    model_dir: str
    steps: int
    total_steps: int
    stopped: bool
    seconds: float
    pairs_per_s: float
    truncated_pairs: int
    final_loss: float | None


def total_steps_of(n_pairs: int, config: RewardRunConfig, world: int = 1) -> int:
    per_epoch = max(1, math.ceil(n_pairs / (config.batch_size * world)) // config.gradient_accumulation_steps)
    return config.max_steps or max(1, math.ceil(config.epochs * per_epoch))


def _version_args(*, checkpointing: bool) -> dict:
    """TrainingArguments whose names changed across transformers versions."""
    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    # transformers >= 5.2x renamed it `activation_checkpointing` and warns on the old name.
    args = {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": checkpointing}
    if "train_sampling_strategy" in names:
        args["train_sampling_strategy"] = "group_by_length"
    else:
        args["group_by_length"] = True
    return args


def _length_grouped_trainer():
    """RewardTrainer with pairs of similar length batched together (HF's LengthGroupedSampler:
    shuffled megabatches, sorted inside). A batch is padded to its longest sequence, so this is
    what makes our runs faster than TRL's defaults at the same loss: less compute spent on padding.
    The Trainer drops every column outside the signature before the sampler reads the lengths;
    "length" is kept in it here (TRL's collator ignores it)."""
    from trl import RewardTrainer

    class LengthGroupedRewardTrainer(RewardTrainer):
        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if "length" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "length"]

    return LengthGroupedRewardTrainer


def load_backbone(path: str, tokenizer):
    """Any local model directory as a one-label sequence classifier (the head is new)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def train(*, rows: Sequence[dict], config: RewardRunConfig, output_dir: str | Path,
          reporter: Reporter | None = None) -> TrainOutcome:
    """Fine-tune `config.base_model` on `rows` ({prompt, chosen, rejected, margin}) and save the
    model, its tokenizer and its encoding to output_dir/model."""
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from trl import RewardConfig

    reporter = reporter or SilentReporter()
    output_dir = Path(output_dir)
    plan = device_plan(config.mixed_precision)
    set_seed(config.seed)

    reporter.phase("loading the backbone")
    tokenizer = load_tokenizer(config.base_model)
    model = load_backbone(config.base_model, tokenizer)

    reporter.phase("tokenizing")
    prompts = [r["prompt"] for r in rows]
    chosen_ids, truncated_c = encode(tokenizer, prompts, [r["chosen"] for r in rows], config.max_length)
    rejected_ids, truncated_r = encode(tokenizer, prompts, [r["rejected"] for r in rows], config.max_length)
    columns = {"chosen_ids": chosen_ids, "rejected_ids": rejected_ids,
               "length": [max(len(c), len(r)) for c, r in zip(chosen_ids, rejected_ids)]}
    if config.use_margin:
        columns["margin"] = [float(r.get("margin") or 0.0) for r in rows]
    dataset = Dataset.from_dict(columns)
    truncated = truncated_c + truncated_r
    if truncated:
        reporter.log(f"{truncated} of {2 * len(rows)} sequences were longer than {config.max_length} tokens and were "
                     "truncated (the longer of prompt and response loses its end).", "warning")

    world = plan.gpus if plan.device == "cuda" and plan.gpus > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1 else 1
    total = total_steps_of(len(rows), config, world)
    args = RewardConfig(
        **trainer_args(config, output_dir=output_dir, total=total, plan=plan),
        **_version_args(checkpointing=config.gradient_checkpointing),
        weight_decay=config.weight_decay,
        max_length=None,  # encode() has truncated already: nothing is dropped
        center_rewards_coefficient=config.center_rewards_coefficient,
        length_column_name="length",
        eos_token=tokenizer.eos_token,
    )
    progress = _Progress(reporter, batch_pairs=config.batch_size * config.gradient_accumulation_steps * world,
                         total=total)

    trainer = _length_grouped_trainer()(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                            callbacks=[progress_callback(progress, reporter, output_dir)])
    reporter.phase("training")
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=config.resume_from or None)
    seconds = time.perf_counter() - started
    steps = trainer.state.global_step
    model_dir = output_dir / "model"
    if trainer.is_world_process_zero():
        reporter.phase("saving the model")
        trainer.save_model(str(model_dir))
        tokenizer.save_pretrained(str(model_dir))
        (model_dir / RECIPE_FILE).write_text(json.dumps({"max_length": config.max_length}))
    # Pairs seen in this call (a resumed run counts from where it restarted); the last batch may be short.
    trained_pairs = min((steps - progress.begin_step) * progress.batch_pairs, len(rows) * config.epochs)
    return TrainOutcome(
        model_dir=str(model_dir), steps=steps, total_steps=trainer.state.max_steps, stopped=progress.stopped,
        seconds=seconds, pairs_per_s=trained_pairs / seconds if seconds else 0.0,
        truncated_pairs=truncated, final_loss=progress.last_loss,
    )


def trainer_args(config, *, output_dir, total: int, plan) -> dict:
    """The Trainer arguments every training backend here shares: schedule, precision for the
    device, logging, checkpoints, seeds (a config with epochs, max_steps, learning_rate, batch_size,
    gradient_accumulation_steps, warmup_ratio, checkpoint_every, keep_checkpoints and seed)."""
    return dict(
        output_dir=str(output_dir), num_train_epochs=config.epochs, max_steps=config.max_steps or -1,
        learning_rate=config.learning_rate, per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, warmup_steps=int(config.warmup_ratio * total),
        use_cpu=plan.device == "cpu", bf16=plan.bf16, fp16=plan.fp16, logging_strategy="steps",
        logging_steps=max(1, total // 200), save_strategy="steps", save_steps=config.checkpoint_every,
        save_total_limit=config.keep_checkpoints, eval_strategy="no", report_to="none", disable_tqdm=True,
        dataloader_num_workers=0, seed=config.seed, data_seed=config.seed,
    )


def progress_callback(progress: "_Progress", reporter: Reporter, output_dir: Path):
    """The Trainer callback every training backend here reports through: progress and cancel at each
    step, logged metrics, checkpoints as they are saved."""
    from transformers import TrainerCallback

    class Callback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            progress.begin(state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            if progress.step(state.global_step, state.max_steps):
                control.should_training_stop = True
                control.should_save = False

        def on_log(self, args, state, control, logs=None, **kwargs):
            progress.logged(state.global_step, state.max_steps, logs or {})

        def on_save(self, args, state, control, **kwargs):
            reporter.checkpoint(step=state.global_step, path=str(Path(output_dir) / f"checkpoint-{state.global_step}"))

    return Callback()


class _Progress:
    """Turns the trainer's callbacks into reports: progress at most once a second (and at the
    end), a metrics point at every logging step, a cancel check at most every two seconds."""

    def __init__(self, reporter: Reporter, *, batch_pairs: int, total: int):
        self.reporter, self.batch_pairs, self.total = reporter, batch_pairs, total
        self.started = time.perf_counter()
        self.begin_step = 0
        self.first_step: int | None = None
        self.last_report = self.last_stop_check = 0.0
        self.last_loss: float | None = None
        self.last_lr: float | None = None
        self.stopped = False

    def begin(self, step: int) -> None:
        self.begin_step = step

    def rate(self, step: int) -> float | None:
        """Pairs per second since the end of the first step (which also pays for warm-up)."""
        if self.first_step is None or step <= self.first_step:
            return None
        return (step - self.first_step) * self.batch_pairs / (time.perf_counter() - self.started)

    def eta(self, step: int, total: int) -> float | None:
        rate = self.rate(step)
        return (total - step) * self.batch_pairs / rate if rate else None

    def step(self, step: int, total: int) -> bool:
        if self.first_step is None:
            self.first_step, self.started = step, time.perf_counter()
        now = time.perf_counter()
        if now - self.last_report >= 1.0 or step >= total:
            self.last_report = now
            self.reporter.progress(step=step, total=total, loss=self.last_loss, learning_rate=self.last_lr,
                                   pairs_per_s=self.rate(step), eta_seconds=self.eta(step, total), metric=False, values={})
        if now - self.last_stop_check >= 2.0 or step >= total:
            self.last_stop_check = now
            if self.reporter.should_stop():
                self.stopped = True
                self.reporter.log(f"Cancelled at step {step} of {total}.", "warning")
                return True
        return False

    def logged(self, step: int, total: int, logs: dict) -> None:
        if "loss" not in logs:
            return  # the end-of-training summary
        self.last_loss, self.last_lr = float(logs["loss"]), logs.get("learning_rate")
        values = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and k not in ("loss", "learning_rate")}
        self.reporter.progress(step=step, total=total, loss=self.last_loss, learning_rate=self.last_lr,
                               pairs_per_s=self.rate(step), eta_seconds=self.eta(step, total),
                               metric=True, values=values)


# ---------------------------------------------------------------- scoring


class RewardScorer:
    """A trained reward model loaded once, scoring (prompt, response) pairs encoded exactly as in
    training. RL runs call it every step; the evaluation once."""

    def __init__(self, model_dir: str | Path, *, batch_size: int = 64, mixed_precision: str = "auto"):
        model_dir = Path(model_dir)
        recipe = json.loads((model_dir / RECIPE_FILE).read_text()) if (model_dir / RECIPE_FILE).is_file() else {}
        self.max_length = int(recipe.get("max_length", 512))
        self.plan = device_plan(mixed_precision)
        self.batch_size = batch_size
        self.tokenizer = load_tokenizer(str(model_dir))
        self.model = load_backbone(str(model_dir), self.tokenizer).to(self.plan.device).eval()

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        import torch

        ids, _ = encode(self.tokenizer, prompts, responses, self.max_length)
        order = np.argsort([len(x) for x in ids], kind="stable")  # similar lengths batch together: less padding
        out = np.empty(len(ids), dtype=np.float64)
        plan = self.plan
        dtype = torch.bfloat16 if plan.bf16 else torch.float16 if plan.fp16 else None
        with torch.no_grad(), torch.autocast(plan.device, dtype=dtype, enabled=dtype is not None):
            for start in range(0, len(order), self.batch_size):
                index = order[start: start + self.batch_size]
                batch = self.tokenizer.pad({"input_ids": [ids[i] for i in index]}, return_tensors="pt").to(plan.device)
                out[index] = self.model(**batch).logits[:, 0].float().cpu().numpy()
        return out


def score(*, model_dir: str | Path, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 64,
          mixed_precision: str = "auto") -> np.ndarray:
    """The reward of each (prompt, response), encoded exactly as in training."""
    return RewardScorer(model_dir, batch_size=batch_size, mixed_precision=mixed_precision)(prompts, responses)
