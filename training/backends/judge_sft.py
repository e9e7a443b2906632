"""A generative judge (RM-R1 style): fine-tune a causal LM with TRL's SFTTrainer on a frozen set's
rm-r1 export, then evaluate it on the held-out split the way it will be used.

No Django: the worker (training/services/judge_runs.py) passes rows in and hears about progress
through the reward backend's `Reporter`, so tests and benchmarks can call `train` and `evaluate`
with plain data.

Training rows are TRL's conversational prompt-completion shape: the prompt is the export's
context_messages (judge system turn, question with both answers), the completion the
rubric/eval/answer target, so the loss falls on what the judge writes, not on the prompt. The
chat template must end the assistant turn in its end-of-turn token (TRL adds no EOS to
conversational rows): the judge then learns to stop after its verdict.

The evaluation reads verdicts through training.judge_backends.CausalJudge, the code that judges
live comparisons once the model is registered: the judge writes its rubric and evaluation, and
P(A) is read off its likelihoods of "A" against "B" after "<answer>[[". Each held-out pair is
judged twice, chosen response first and second, so a judge that always says "A" scores 0.5, not
its share of A-wins, and its position consistency shows it.
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..config import GenerativeJudgeConfig
from .reward_trl import (
    Reporter, SilentReporter, _Progress, _version_args, device_plan, progress_callback, trainer_args,
)

SAMPLES_KEPT = 3  # written evaluations kept in the report, so a lead can read what the judge writes


@dataclass
class JudgeTrainOutcome:
    model_dir: str
    steps: int
    total_steps: int
    stopped: bool
    seconds: float
    examples_per_s: float
    examples: int
    too_long: int
    final_loss: float | None


def sft_rows(rows: Sequence[dict]) -> list[dict]:
    """rm-r1 export rows as TRL conversational prompt-completion rows."""
    return [{"prompt": [{"role": m["role"], "content": m["content"]} for m in row["context_messages"]],
             "completion": [{"role": "assistant", "content": row["target"]}]} for row in rows]


def _load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise ValueError(f"{path} has no chat template: a judge is asked in chat turns (use an instruct model)")
    return tokenizer


def _lengths(tokenizer, rows: Sequence[dict]) -> list[int]:
    """Tokens of each prompt + completion as TRL will tokenize it (the chat template, whole)."""
    return [len(tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=True, return_dict=True)["input_ids"])
            for r in rows]


def _args(config: GenerativeJudgeConfig, *, output_dir: Path, total: int, plan):
    from trl import SFTConfig

    version_args = _version_args(checkpointing=config.gradient_checkpointing)
    # The length-grouped sampler _version_args switches on needs a length column; SFT rows have none.
    if "train_sampling_strategy" in version_args:
        version_args["train_sampling_strategy"] = "random"
    else:
        version_args["group_by_length"] = False
    return SFTConfig(
        **version_args,
        **trainer_args(config, output_dir=output_dir, total=total, plan=plan),
        max_length=config.max_length,  # nothing is cut: longer rows were left out
        completion_only_loss=True,
        packing=False,
    )


def train(*, rows: Sequence[dict], config: GenerativeJudgeConfig, output_dir: str | Path,
          reporter: Reporter | None = None) -> JudgeTrainOutcome:
    """Fine-tune `config.base_model` on rm-r1 `rows` and save model and tokenizer to output_dir/model
    (not when cancelled)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, set_seed
    from trl import SFTTrainer

    reporter = reporter or SilentReporter()
    output_dir = Path(output_dir)
    plan = device_plan(config.mixed_precision)
    set_seed(config.seed)

    reporter.phase("loading the base model")
    if not (Path(config.base_model) / "config.json").is_file():  # checked when queued; gone since, or another machine
        raise FileNotFoundError(f"no model directory at {config.base_model} on this worker")
    tokenizer = _load_tokenizer(config.base_model)
    # fp32 master weights; the Trainer's autocast gives bf16/fp16 compute on a GPU.
    model = AutoModelForCausalLM.from_pretrained(config.base_model, dtype=torch.float32)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id

    reporter.phase("tokenizing")
    examples = sft_rows(rows)
    lengths = _lengths(tokenizer, examples)
    kept = [r for r, n in zip(examples, lengths) if n <= config.max_length]
    too_long = len(examples) - len(kept)
    if too_long:
        reporter.log(f"{too_long} of {len(examples)} examples are longer than {config.max_length} tokens (longest "
                     f"{max(lengths)}) and were left out: cut short, they would teach the rubric without the verdict.",
                     "warning")
    if not kept:
        raise ValueError(f"every training example is longer than max_length ({config.max_length} tokens; the "
                         f"shortest has {min(lengths)}): raise max_length")
    dataset = Dataset.from_list(kept)

    per_epoch = max(1, math.ceil(len(kept) / config.batch_size) // config.gradient_accumulation_steps)
    total = config.max_steps or max(1, math.ceil(config.epochs * per_epoch))
    progress = _Progress(reporter, batch_pairs=config.batch_size * config.gradient_accumulation_steps, total=total)

    trainer = SFTTrainer(model=model, args=_args(config, output_dir=output_dir, total=total, plan=plan),
                         train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[progress_callback(progress, reporter, output_dir)])
    reporter.phase("training")
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    steps = trainer.state.global_step
    model_dir = output_dir / "model"
    if not progress.stopped:
        reporter.phase("saving the model")
        trainer.save_model(str(model_dir))
        tokenizer.save_pretrained(str(model_dir))
    # Examples seen; without max_steps the epochs bound it (the last batch of each may be short).
    trained = steps * progress.batch_pairs
    if config.max_steps is None:
        trained = min(trained, len(kept) * config.epochs)
    return JudgeTrainOutcome(
        model_dir=str(model_dir), steps=steps, total_steps=trainer.state.max_steps, stopped=progress.stopped,
        seconds=seconds, examples_per_s=trained / seconds if seconds else 0.0, examples=len(kept),
        too_long=too_long, final_loss=progress.last_loss)


# ---------------------------------------------------------------- evaluation


class PairJudge(Protocol):
    """What the evaluation asks of a judge: training.judge_backends.CausalJudge's p_first."""

    def p_first(self, messages: list[dict]) -> tuple[float, str]: ...


def shown_choice(p_first: float) -> str:
    """left | right | tie: the verdict a judge gives for P(A), by the rule live judging uses
    (judge_backends.verdict_from_p), so the evaluation and the labels read a judge alike."""
    from ..judge_backends import verdict_from_p

    return verdict_from_p(p_first, "").choice


def _outcome(p_first: float, *, chosen_first: bool) -> str:
    """chosen | rejected | tie, whichever side the chosen response was shown on."""
    choice = shown_choice(p_first)
    if choice not in ("left", "right"):
        return "tie"
    return "chosen" if (choice == "left") == chosen_first else "rejected"


def _rate(values: Sequence[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def judge_figures(*, pairs: Sequence[dict], p_chosen_first: Sequence[float],
                  p_rejected_first: Sequence[float]) -> dict:
    """The held-out report from two verdicts per pair: P(A) with the chosen response shown as A
    (`p_chosen_first`), and P(A) with the rejected one shown as A (`p_rejected_first`).

    accuracy: share of the 2n verdicts that pick the chosen response (strict: a tie is not right);
    position_consistency: share of pairs whose verdict does not change when A and B swap (the same
    response picked both times, or a tie both times); first_position_rate: share of verdicts for A
    (0.5 for a judge without position bias, on these balanced orders); tie_rate; mean_p_chosen: the
    mean probability given to the chosen response. Per category (domain, tag): pairs, accuracy,
    position consistency. An undefined figure (no pairs) is None."""
    if not len(pairs) == len(p_chosen_first) == len(p_rejected_first):
        raise ValueError("one verdict in each order per pair")
    first = [_outcome(p, chosen_first=True) for p in p_chosen_first]
    second = [_outcome(p, chosen_first=False) for p in p_rejected_first]
    right_first = [o == "chosen" for o in first]
    right_second = [o == "chosen" for o in second]
    consistent = [a == b for a, b in zip(first, second)]
    shown = [shown_choice(p) for p in [*p_chosen_first, *p_rejected_first]]
    p_chosen = [float(p) for p in p_chosen_first] + [1.0 - float(p) for p in p_rejected_first]
    report = {
        "n": len(pairs),
        "verdicts": 2 * len(pairs),
        "accuracy": _rate(right_first + right_second),
        "accuracy_chosen_first": _rate(right_first),
        "accuracy_chosen_second": _rate(right_second),
        "position_consistency": _rate(consistent),
        "first_position_rate": _rate([c == "left" for c in shown]),
        "tie_rate": _rate([c not in ("left", "right") for c in shown]),
        "mean_p_chosen": sum(p_chosen) / len(p_chosen) if p_chosen else None,
        "categories": {},
    }
    for category in ("domain", "tag"):
        groups: dict[str, list[int]] = defaultdict(list)
        for index, pair in enumerate(pairs):
            groups[pair.get(category) or "(none)"].append(index)
        report["categories"][category] = [
            {"name": name, "pairs": len(members),
             "accuracy": _rate([right_first[i] for i in members] + [right_second[i] for i in members]),
             "position_consistency": _rate([consistent[i] for i in members])}
            for name, members in sorted(groups.items())]
    return report


def evaluate(*, model_dir: str | Path, pairs: Sequence[dict], max_new_tokens: int = 256,
             judge: PairJudge | None = None, reporter: Reporter | None = None) -> dict:
    """Judge every held-out pair ({messages, chosen, rejected, domain, tag}, as set_pairs gives
    them) in both orders with the model at `model_dir` (or `judge`), and report the figures of
    judge_figures plus a few of the evaluations it wrote."""
    from ..judge_backends import CausalJudge, rm_r1_messages

    reporter = reporter or SilentReporter()
    # Not the process-wide cached judge: a worker should not keep a just-evaluated model in memory.
    judge = judge or CausalJudge(str(model_dir), max_new_tokens=max_new_tokens)
    p_chosen_first, p_rejected_first, samples = [], [], []
    last_report = 0.0
    for index, pair in enumerate(pairs):
        p_first, written = judge.p_first(rm_r1_messages(messages=pair["messages"], left=pair["chosen"],
                                                        right=pair["rejected"]))
        p_swapped, _ = judge.p_first(rm_r1_messages(messages=pair["messages"], left=pair["rejected"],
                                                    right=pair["chosen"]))
        p_chosen_first.append(p_first)
        p_rejected_first.append(p_swapped)
        if len(samples) < SAMPLES_KEPT:
            samples.append({"p_chosen": p_first, "evaluation": written[:1000]})
        now = time.perf_counter()
        if now - last_report >= 30.0 or index + 1 == len(pairs):
            last_report = now
            reporter.phase(f"evaluating: {index + 1} of {len(pairs)} held-out pairs")
    report = judge_figures(pairs=pairs, p_chosen_first=p_chosen_first, p_rejected_first=p_rejected_first)
    report["max_new_tokens"] = max_new_tokens
    report["samples"] = samples
    return report
