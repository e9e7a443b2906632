"""GRPO through TRL's GRPOTrainer, with the hybrid reward as TRL reward functions.

Each reward component (the reward model, each verifier) is its own TRL reward function with its
weight in `reward_weights`, so TRL itself sums them (nansum: a verifier's None, "not applicable",
adds nothing) and logs each one's mean. What TRL does not log (hedging and list rates, the
completions behind an alert) a small buffer collects as the reward functions see the completions;
a callback turns each logged step into one `RLHooks.step` call, with the same metric keys as PPO.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import RLRunConfig
from .reward_trl import _version_args, device_plan
from .rl_common import HybridReward, RewardBatch, RLHooks, generate, load_policy, step_metrics, step_samples


@dataclass
class GRPOOutcome:
    steps_done: int
    stopped: bool
    last_checkpoint: str


class _StepBuffer:
    """What the reward functions saw since the last logged step."""

    def __init__(self, reward: HybridReward):
        self.reward = reward
        self.clear()

    def clear(self) -> None:
        self.rows: list[dict] = []
        self.completions: list[str] = []
        self.lengths: list[int] = []
        self.components: dict[str, list] = {}

    def record(self, name: str, rows: list[dict], completions: list[str], lengths: list[int], values: list) -> None:
        if name == self.reward.components[0]:  # every function sees the same completions; keep them once
            self.rows.extend(rows)
            self.completions.extend(completions)
            self.lengths.extend(lengths)
        self.components.setdefault(name, []).extend(values)

    def batch(self) -> RewardBatch:
        weights = self.reward.weights
        total = [sum(weights[name] * values[i] for name, values in self.components.items()
                     if i < len(values) and values[i] is not None) for i in range(len(self.completions))]
        return RewardBatch(total=total, components=dict(self.components))


def _text(completion) -> str:
    # Conversational prompts give [{"role": "assistant", "content": ...}]; standard ones a string.
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def _reward_function(name: str, reward: HybridReward, buffer: _StepBuffer):
    def reward_function(prompts, completions, completion_ids=None, ground_truth=None, domain=None,
                        prompt_id=None, **kwargs):
        n = len(completions)
        rows = [{"prompt": prompts[i], "ground_truth": (ground_truth or [None] * n)[i],
                 "domain": (domain or [""] * n)[i] or "", "prompt_id": (prompt_id or [None] * n)[i]} for i in range(n)]
        texts = [_text(c) for c in completions]
        values = reward.component(name, rows, texts)
        lengths = [len(ids) for ids in completion_ids] if completion_ids is not None else [len(t.split()) for t in texts]
        buffer.record(name, rows, texts, lengths, values)
        return values

    reward_function.__name__ = name  # TRL logs rewards/<name>/mean
    return reward_function


def grpo_args(*, config: RLRunConfig, output_dir: Path, device: str):
    from trl import GRPOConfig

    plan = device_plan("auto") if device != "cpu" else None
    version_args = _version_args(checkpointing=False)
    # The length-grouped sampler _version_args switches on is for reward pairs, not prompts.
    if "train_sampling_strategy" in version_args:
        version_args["train_sampling_strategy"] = "random"
    else:
        version_args["group_by_length"] = False
    return GRPOConfig(
        **version_args,
        output_dir=str(output_dir),
        use_cpu=device == "cpu",
        bf16=bool(plan and plan.bf16), fp16=bool(plan and plan.fp16),
        max_steps=config.steps,
        # One optimiser step per generation batch: prompts_per_step prompts x `generations` each.
        per_device_train_batch_size=config.prompts_per_step * config.generations,
        gradient_accumulation_steps=1,
        num_generations=config.generations,
        max_completion_length=config.max_new_tokens,
        temperature=config.temperature,
        learning_rate=config.learning_rate,
        beta=config.kl_coef,
        shuffle_dataset=not config.curriculum,  # a curriculum is an order: keep it
        logging_strategy="steps", logging_steps=1,
        save_strategy="steps", save_steps=config.checkpoint_every, save_only_model=False,
        eval_strategy="no", report_to="none", disable_tqdm=True, dataloader_num_workers=0,
        seed=config.seed, use_vllm=False,
    )


def train(*, config: RLRunConfig, rows: Sequence[dict], reward: HybridReward, output_dir: str | Path,
          hooks: RLHooks, device: str = "cpu", resume_from: str | None = None) -> GRPOOutcome:
    """Optimise `config.policy_path` on `rows` (prompt rows, see rl_common) with GRPO."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    output_dir = Path(output_dir)
    torch.manual_seed(config.seed)
    model, tokenizer = load_policy(config.policy_path)
    buffer = _StepBuffer(reward)
    functions = [_reward_function(name, reward, buffer) for name in reward.components]
    args = grpo_args(config=config, output_dir=output_dir, device=device)
    args.reward_weights = [reward.weights[name] for name in reward.components]
    columns = {"prompt": [r["prompt"] for r in rows], "ground_truth": [r.get("ground_truth") for r in rows],
               "domain": [r.get("domain") or "" for r in rows], "prompt_id": [r.get("prompt_id") for r in rows]}
    state = {"stopped": False, "last": ""}

    class Report(TrainerCallback):
        def on_log(self, args, trainer_state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" not in logs or not buffer.completions:
                return
            batch = buffer.batch()
            kl = logs.get("kl")
            # TRL's kl is the mean per-token KL; times the mean completion length it is nats per
            # sequence, the unit the monitors' ceiling is in.
            kl_sequence = kl * logs.get("completions/mean_length", 0.0) if kl is not None else None
            metrics = step_metrics(batch=batch, completions=buffer.completions, lengths=buffer.lengths,
                                   kl=kl_sequence, entropy=logs.get("entropy"))
            hooks.step(step=trainer_state.global_step, total=config.steps, loss=logs.get("loss"),
                       learning_rate=logs.get("learning_rate"), metrics=metrics,
                       samples=step_samples(rows=buffer.rows, completions=buffer.completions, batch=batch,
                                            lengths=buffer.lengths))
            buffer.clear()

        def on_step_end(self, args, trainer_state, control, **kwargs):
            if trainer_state.global_step >= config.steps:
                control.should_save = True  # the last step always leaves a checkpoint
            if hooks.should_stop():
                state["stopped"] = True
                control.should_training_stop = True

        def on_save(self, args, trainer_state, control, model=None, **kwargs):
            step = trainer_state.global_step
            path = output_dir / f"checkpoint-{step}"
            tokenizer.save_pretrained(str(path))
            state["last"] = str(path)
            hooks.checkpoint(step=step, path=str(path), generate=lambda suite: generate(
                model, tokenizer, suite, max_new_tokens=config.max_new_tokens))

    trainer = GRPOTrainer(model=model, reward_funcs=functions, args=args, train_dataset=Dataset.from_dict(columns),
                          processing_class=tokenizer, callbacks=[Report()])
    if config.kl_coef > 0 and config.reference_path and config.reference_path != config.policy_path:
        # TRL builds its reference from the policy's own path; a different reference replaces it,
        # prepared as TRL prepares its own (it reads log-probs from a fused LM head).
        from transformers import AutoModelForCausalLM
        from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model

        reference = AutoModelForCausalLM.from_pretrained(config.reference_path, dtype=model.dtype)
        disable_dropout_in_model(reference)
        add_fused_lm_head(reference, temperature=args.temperature, cast_lm_head_to_fp32=args.cast_lm_head_to_fp32)
        reference.eval()
        trainer.ref_model = trainer.accelerator.prepare_model(reference, evaluation_mode=True)
    hooks.phase("training (GRPO)")
    trainer.train(resume_from_checkpoint=resume_from or None)
    if trainer.state.global_step < config.steps and not state["stopped"]:
        # TRL's sampler drops a batch it cannot fill: too few prompts ends training at step 0
        # without an error. A run that did not train must not read as a success.
        raise RuntimeError(f"GRPO stopped at step {trainer.state.global_step} of {config.steps}: "
                           f"{len(rows)} prompts cannot fill a step of {config.prompts_per_step}.")
    return GRPOOutcome(steps_done=trainer.state.global_step, stopped=state["stopped"], last_checkpoint=state["last"])
