"""Scale-out: for a run larger than one machine, write what OpenRLHF or verl reads, build the command
that starts it on a Ray cluster, and talk to that cluster's Job Submission REST API to submit the
command and track its job. Pure: rows and paths in, files and command lines out; no Django.

Versions targeted (every flag and key was checked against these files; the tests hold copies):
- OpenRLHF, openrlhf/cli/train_ppo_ray.py at commit 17b714b5992dd7e4538c21358bc051044496c05d.
  Names that changed across versions: `--bf16` became `--param_dtype` (default bf16), `--flash_attn`
  became `--attn_implementation` (default flash_attention_2), `--use_kl_estimator_k3` became
  `--kl_estimator k3`. We pass none of the renamed dtype/attention flags (this version's defaults
  are what we want), so only `--kl_estimator` ties the command to OpenRLHF >= the k1/k2/k3 rename.
- verl, verl/trainer/config/_generated_ppo_trainer.yaml (the flattened ppo_trainer.yaml) at commit
  09d3a66b5d5f92ac82e386d4786f1b04afdbc525. `actor_rollout_ref.rollout.name` has no default there
  (`???`), so we always pass it; `data.seed` exists there (older configs lack it). We leave
  `actor_rollout_ref.rollout.mode` to the installed version's default: newer verl refuses `sync`.
- Ray Jobs REST API (dashboard/modules/job/job_head.py, common.py; checked against Ray 2.60.0).

Settings (a plain dict; keys not listed are ignored, so an RL run's whole config can be passed):
  algorithm "ppo" | "grpo"; kl_coef; learning_rate; critic_learning_rate; generations (completions
  per prompt); steps (optimiser steps, one per batch of prompts_per_step prompts); prompts_per_step;
  max_new_tokens; max_prompt_tokens; temperature; seed; nodes; gpus_per_node; micro_batch_size;
  vllm_tensor_parallel_size; checkpoint_every; ppo_epochs; clip_range; gamma and gae_lambda (PPO);
  apply_chat_template (OpenRLHF); project_name;
  experiment_name; save_dir (where checkpoints go, on the cluster); data_dir (a cluster path that
  already holds out_dir's files, e.g. shared storage: then nothing is uploaded); env_vars;
  reward_function_path / reward_function_name (verl without a reward model).

Where the data travels: by default the spec's runtime_env names out_dir as Ray's `working_dir`;
the `ray job submit` CLI uploads it, and RayJobs.submit uploads it through the REST API's package
endpoint as the CLI does (Ray refuses a plain path there). The command names its files relative to
that directory. Ray caps a package at 512 MiB; beyond that, set data_dir.

Tokenizers: OpenRLHF scores the policy's token sequences with the reward model (no remote RM here),
so there the reward model must share the policy's tokenizer. verl decodes and re-templates for the reward model
(`reward_model.model.input_tokenizer`, which needs `data.return_raw_chat`), so it need not.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ENGINES = ("openrlhf", "verl")
ALGORITHMS = ("ppo", "grpo")
OPENRLHF_SOURCE = "OpenRLHF/OpenRLHF@17b714b5992dd7e4538c21358bc051044496c05d openrlhf/cli/train_ppo_ray.py"
VERL_SOURCE = ("volcengine/verl@09d3a66b5d5f92ac82e386d4786f1b04afdbc525 "
               "verl/trainer/config/_generated_ppo_trainer.yaml")

PROMPTS_FILE = "prompts.jsonl"
TRAIN_FILE = "train.parquet"
VAL_FILE = "val.parquet"
VAL_FALLBACK_ROWS = 64  # verl always loads data.val_files; without a held-out split it gets this many train prompts
PARQUET_BATCH = 2000


# ------------------------------------------------------------------------------------------ spec

@dataclass
class ScaleOutSpec:
    """What a scale-out run needs: the files written, the command (as a shell string for Ray's
    `entrypoint` and as argv), and the runtime_env Ray should give the job."""

    engine: str
    files: list[Path]
    entrypoint: str
    argv: list[str]
    runtime_env: dict
    source: str = ""  # the engine version whose flags/keys the command uses
    notes: list[str] = field(default_factory=list)  # how settings became the engine's numbers

    def describe(self) -> str:
        lines = [f"{self.engine} ({self.source})", "files:"]
        lines += [f"  {p}" for p in self.files]
        lines.append(f"runtime_env: {json.dumps(self.runtime_env, sort_keys=True)}")
        lines.append("entrypoint:")
        parts = [shlex.join(self.argv[:3])]  # python3 -m module, then a flag with its value or an override a line
        for arg in self.argv[3:]:
            if parts and parts[-1].startswith("--") and " " not in parts[-1] and not arg.startswith("--"):
                parts[-1] += " " + shlex.quote(arg)
            else:
                parts.append(shlex.quote(arg))
        lines.append("  " + " \\\n    ".join(parts))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def as_json(self) -> dict:
        out = asdict(self)
        out["files"] = [str(p) for p in self.files]
        return out


@dataclass(frozen=True)
class _Plan:
    algorithm: str
    kl_coef: float
    learning_rate: float
    critic_learning_rate: float
    generations: int
    steps: int
    prompts_per_step: int
    max_new_tokens: int
    max_prompt_tokens: int
    temperature: float
    seed: int
    nodes: int
    gpus_per_node: int
    micro_batch_size: int
    tensor_parallel: int
    checkpoint_every: int
    apply_chat_template: bool
    project_name: str
    experiment_name: str
    save_dir: str
    data_dir: str
    env_vars: dict
    ppo_epochs: int
    clip_range: float | None  # None: the engine's default (0.2 in both)
    gamma: float | None
    gae_lambda: float | None

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def samples_per_step(self) -> int:
        return self.prompts_per_step * self.generations


def _plan(settings: dict) -> _Plan:
    def get(key: str, default, kind=str):
        value = settings.get(key)
        return default if value is None or value == "" else kind(value)

    nodes, gpus_per_node = get("nodes", 1, int), get("gpus_per_node", 8, int)
    plan = _Plan(
        algorithm=get("algorithm", "grpo"),
        kl_coef=get("kl_coef", 0.05, float),
        learning_rate=get("learning_rate", 1e-6, float),
        critic_learning_rate=get("critic_learning_rate", 9e-6, float),
        generations=get("generations", 4, int),
        steps=get("steps", 50, int),
        # One optimiser step per prompt batch; the default gives every GPU a prompt.
        prompts_per_step=get("prompts_per_step", nodes * gpus_per_node, int),
        max_new_tokens=get("max_new_tokens", 1024, int),
        max_prompt_tokens=get("max_prompt_tokens", 1024, int),
        temperature=get("temperature", 1.0, float),
        seed=get("seed", 0, int),
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        micro_batch_size=get("micro_batch_size", 1, int),
        tensor_parallel=get("vllm_tensor_parallel_size", 1, int),
        checkpoint_every=get("checkpoint_every", 0, int),
        apply_chat_template=get("apply_chat_template", True, bool),
        project_name=get("project_name", "preference-studio"),
        experiment_name=get("experiment_name", "run"),
        save_dir=get("save_dir", "checkpoints"),
        data_dir=get("data_dir", ""),
        env_vars={str(k): str(v) for k, v in (settings.get("env_vars") or {}).items()},
        ppo_epochs=get("ppo_epochs", 1, int),
        clip_range=get("clip_range", None, float),
        gamma=get("gamma", None, float),
        gae_lambda=get("gae_lambda", None, float),
    )
    problems = []
    if plan.algorithm not in ALGORITHMS:
        problems.append(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {plan.algorithm!r}")
    if plan.algorithm == "grpo" and plan.generations < 2:
        problems.append("GRPO compares completions of one prompt: generations must be at least 2")
    for name in ("generations", "steps", "prompts_per_step", "max_new_tokens", "max_prompt_tokens", "nodes",
                 "gpus_per_node", "micro_batch_size", "tensor_parallel", "ppo_epochs"):
        if getattr(plan, name) < 1:
            problems.append(f"{name} must be at least 1")
    if plan.kl_coef < 0:
        problems.append("kl_coef must not be negative")
    if problems:
        raise ValueError("; ".join(problems))
    if plan.gpus % plan.tensor_parallel:
        problems.append(f"the GPU count ({plan.gpus}) must be a multiple of vllm_tensor_parallel_size "
                        f"({plan.tensor_parallel})")
    # Both engines split one step's samples evenly over the GPUs in micro-batches:
    # OpenRLHF: train_batch_size = micro_train_batch_size * accumulation * world size (DeepSpeed);
    # verl: validate_config needs data.train_batch_size * rollout.n % n_gpus == 0.
    if plan.samples_per_step % (plan.gpus * plan.micro_batch_size):
        problems.append(
            f"prompts_per_step x generations ({plan.prompts_per_step} x {plan.generations} = "
            f"{plan.samples_per_step}) must be a multiple of nodes x gpus_per_node x micro_batch_size "
            f"({plan.nodes} x {plan.gpus_per_node} x {plan.micro_batch_size} = {plan.gpus * plan.micro_batch_size})")
    if problems:
        raise ValueError("; ".join(problems))
    return plan


def _save_note(plan: _Plan) -> list[str]:
    if plan.save_dir.startswith("/"):
        return []
    note = (f"checkpoints go to {plan.save_dir!r} inside the job's working directory on the cluster, which Ray "
            "may clean up: set save_dir to shared storage to keep them")
    return [note]


def _data_path(plan: _Plan, name: str) -> str:
    return f"{plan.data_dir.rstrip('/')}/{name}" if plan.data_dir else name


def _runtime_env(plan: _Plan, out_dir: Path) -> dict:
    env: dict = {} if plan.data_dir else {"working_dir": str(out_dir)}
    if plan.env_vars:
        env["env_vars"] = dict(plan.env_vars)
    return env


def _epochs_for(plan: _Plan, prompts: int) -> int:
    """Passes over the prompts needed for plan.steps batches. Both engines drop the last partial batch."""
    per_pass = prompts // plan.prompts_per_step
    if per_pass < 1:
        raise ValueError(f"{prompts} training prompt(s) cannot fill one batch of prompts_per_step="
                         f"{plan.prompts_per_step}; both engines drop a partial last batch")
    return math.ceil(plan.steps / per_pass)


# -------------------------------------------------------------------------------------- OpenRLHF

def openrlhf_spec(*, prompt_rows: Iterable[dict], out_dir: Path, pretrain: str, reward_pretrain: str,
                  settings: dict) -> ScaleOutSpec:
    """Write prompts.jsonl ({"input", "label"} rows, rewards/set_formats.py's openrlhf-prompt; pass the
    set's train split) and build `python3 -m openrlhf.cli.train_ppo_ray ...`.

    Layout: OpenRLHF's hybrid engine. Actor, reference, reward model, critic (PPO) and the vLLM
    engines share all nodes x gpus_per_node GPUs (--colocate_all_models, sleeping in turn), which
    needs vllm_num_engines x vllm_tensor_parallel_size = the actor's GPUs."""
    plan = _plan(settings)
    if not pretrain or not reward_pretrain:
        raise ValueError("OpenRLHF needs the policy (pretrain) and a reward model (reward_pretrain)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / PROMPTS_FILE
    prompts = 0
    with path.open("w", encoding="utf-8") as f:
        for row in prompt_rows:
            f.write(json.dumps({"input": row["input"], "label": row.get("label") or ""}, ensure_ascii=False) + "\n")
            prompts += 1

    notes = []
    # OpenRLHF counts passes over the prompts (--num_episodes) and can cap the prompts used
    # (--max_samples); it has no step limit. Within one pass we cap exactly; beyond, we round up.
    wanted = plan.steps * plan.prompts_per_step
    if wanted <= prompts:
        episodes, max_samples = 1, wanted
        notes.append(f"{plan.steps} steps = 1 episode over the first {wanted} of {prompts} prompts (--max_samples)")
    else:
        episodes, max_samples = _epochs_for(plan, prompts), None
        steps = episodes * (prompts // plan.prompts_per_step)
        notes.append(f"OpenRLHF counts episodes, not steps: {episodes} episode(s) of {prompts} prompts = "
                     f"{steps} steps (asked for {plan.steps})")
    notes += _save_note(plan)
    ppo = plan.algorithm == "ppo"
    n, g = plan.nodes, plan.gpus_per_node
    args: list[tuple[str, object]] = [
        ("--actor_num_nodes", n), ("--actor_num_gpus_per_node", g),
        ("--ref_num_nodes", n), ("--ref_num_gpus_per_node", g),
        ("--reward_num_nodes", n), ("--reward_num_gpus_per_node", g),
    ]
    if ppo:
        args += [("--critic_num_nodes", n), ("--critic_num_gpus_per_node", g)]
    args += [
        ("--vllm_num_engines", plan.gpus // plan.tensor_parallel),
        ("--vllm_tensor_parallel_size", plan.tensor_parallel),
        ("--colocate_all_models", None), ("--vllm_enable_sleep", None), ("--deepspeed_enable_sleep", None),
        ("--vllm_gpu_memory_utilization", 0.5),
        ("--pretrain", pretrain), ("--reward_pretrain", reward_pretrain),
    ]
    if ppo:
        # The critic starts from the policy (fresh value head), not from the reward model that
        # OpenRLHF would pick by default: the critic reads the policy's tokens.
        args.append(("--critic_pretrain", pretrain))
    args += [
        ("--save_path", plan.save_dir),
        ("--prompt_data", _data_path(plan, PROMPTS_FILE)), ("--input_key", "input"), ("--label_key", "label"),
    ]
    if plan.apply_chat_template:
        args.append(("--apply_chat_template", None))  # a text input becomes one user message
    args += [
        ("--rollout_batch_size", plan.prompts_per_step), ("--n_samples_per_prompt", plan.generations),
        ("--train_batch_size", plan.samples_per_step),  # one optimiser step per rollout batch
        ("--micro_train_batch_size", plan.micro_batch_size), ("--micro_rollout_batch_size", plan.micro_batch_size),
        ("--max_epochs", plan.ppo_epochs), ("--num_episodes", episodes),
    ]
    if max_samples is not None:
        args.append(("--max_samples", max_samples))
    args += [
        ("--prompt_max_len", plan.max_prompt_tokens), ("--generate_max_len", plan.max_new_tokens),
        ("--temperature", plan.temperature), ("--seed", plan.seed),
        ("--zero_stage", 3), ("--gradient_checkpointing", None),
        ("--actor_learning_rate", plan.learning_rate),
    ]
    if plan.clip_range is not None:
        args.append(("--eps_clip", plan.clip_range))
    if ppo:
        args += [("--critic_learning_rate", plan.critic_learning_rate), ("--advantage_estimator", "gae"),
                 ("--init_kl_coef", plan.kl_coef)]  # KL as a per-token reward penalty (k1)
        if plan.gamma is not None:
            args.append(("--gamma", plan.gamma))
        if plan.gae_lambda is not None:
            args.append(("--lambd", plan.gae_lambda))
    else:
        args += [("--advantage_estimator", "group_norm"), ("--init_kl_coef", plan.kl_coef)]
        if plan.kl_coef > 0:  # GRPO's KL is a loss term with the k3 estimator, as in the paper
            args += [("--use_kl_loss", None), ("--kl_estimator", "k3")]
    if plan.checkpoint_every:
        args += [("--save_steps", plan.checkpoint_every), ("--ckpt_path", f"{plan.save_dir.rstrip('/')}/ckpt")]

    argv = ["python3", "-m", "openrlhf.cli.train_ppo_ray"]
    for flag, value in args:
        argv.append(flag)
        if value is not None:
            argv.append(_cli_value(value))
    return ScaleOutSpec(engine="openrlhf", files=[path], entrypoint=shlex.join(argv), argv=argv,
                        runtime_env=_runtime_env(plan, out_dir), source=OPENRLHF_SOURCE, notes=notes)


def _cli_value(value: object) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def ray_submit_command(spec: ScaleOutSpec, address: str, *, submission_id: str = "") -> list[str]:
    """The `ray job submit` CLI line for a spec (Ray's documented flags: --address,
    --submission-id, --runtime-env-json; everything after `--` is the entrypoint). The CLI uploads
    a local working_dir itself."""
    cmd = ["ray", "job", "submit", "--address", address]
    if submission_id:
        cmd += ["--submission-id", submission_id]
    if spec.runtime_env:
        cmd += ["--runtime-env-json", json.dumps(spec.runtime_env, sort_keys=True)]
    return [*cmd, "--", *spec.argv]


def openrlhf_submit_command(spec: ScaleOutSpec, address: str) -> list[str]:
    """`ray job submit --address ... --runtime-env-json ... -- python3 -m openrlhf.cli.train_ppo_ray ...`,
    the form of OpenRLHF's README and examples/scripts."""
    return ray_submit_command(spec, address)


# ------------------------------------------------------------------------------------------ verl

class _ParquetSink:
    """Rows to a parquet file in row groups (flat memory), schema fixed by the first group, as
    rewards/services/sets.py's set_parquet writes the verl export."""

    def __init__(self, path: Path, batch: int = PARQUET_BATCH):
        self.path, self.batch = path, batch
        self.writer = None
        self.chunk: list[dict] = []
        self.rows = 0

    def add(self, row: dict) -> None:
        self.chunk.append(row)
        if len(self.chunk) >= self.batch:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.chunk:
            return
        table = pa.Table.from_pylist(self.chunk, schema=self.writer.schema if self.writer else None)
        if self.writer is None:
            self.writer = pq.ParquetWriter(str(self.path), table.schema)
        self.writer.write_table(table)
        self.rows += len(self.chunk)
        self.chunk.clear()

    def close(self) -> int:
        self.flush()
        if self.writer is not None:
            self.writer.close()
        return self.rows


def verl_spec(*, prompt_rows: Iterable[dict], out_dir: Path, model_path: str, reward_model_path: str | None,
              settings: dict) -> ScaleOutSpec:
    """Write train.parquet and val.parquet (verl rows from rewards/set_formats.py; pass every split)
    and build `python3 -m verl.trainer.main_ppo key=value ...`.

    Rows whose extra_info.split is "test" (the set's held-out prompts) become val.parquet, the rest
    train.parquet. verl always loads data.val_files, so a set without held-out prompts validates on
    its first VAL_FALLBACK_ROWS training prompts. Without a reward model verl's built-in scorer
    only knows its own data sources, so settings must name a reward function."""
    plan = _plan(settings)
    if not model_path:
        raise ValueError("verl needs the policy (model_path)")
    reward_fn_path = str(settings.get("reward_function_path") or "")
    if not reward_model_path and not reward_fn_path:
        raise ValueError("verl needs a reward model or a reward function (settings reward_function_path): its "
                         "default scorer only knows its own data sources, not preference-studio/*")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, val = _ParquetSink(out_dir / TRAIN_FILE), _ParquetSink(out_dir / VAL_FILE)
    fallback: list[dict] = []
    held_out = 0
    try:
        for row in prompt_rows:
            if (row.get("extra_info") or {}).get("split") == "test":
                val.add(row)
                held_out += 1
            else:
                train.add(row)
                if len(fallback) < VAL_FALLBACK_ROWS:
                    fallback.append(row)
        if not held_out:
            for row in fallback:
                val.add(row)
    finally:
        prompts, validating = train.close(), val.close()
    if not prompts:
        raise ValueError("no training prompts to write")

    notes = [f"{prompts} training prompts; validation on " + (
        f"{held_out} held-out prompts" if held_out
        else f"the first {validating} training prompts (the set has no held-out split)")]
    epochs = _epochs_for(plan, prompts)
    ppo, kl = plan.algorithm == "ppo", plan.kl_coef > 0
    m = plan.micro_batch_size
    o: list[tuple[str, object]] = [
        ("algorithm.adv_estimator", "gae" if ppo else "grpo"),
        ("data.train_files", _data_path(plan, TRAIN_FILE)),
        ("data.val_files", _data_path(plan, VAL_FILE)),
        ("data.prompt_key", "prompt"),
        ("data.max_prompt_length", plan.max_prompt_tokens),
        ("data.max_response_length", plan.max_new_tokens),
        ("data.filter_overlong_prompts", True),  # data.truncation defaults to error
        ("data.train_batch_size", plan.prompts_per_step),
        ("data.seed", plan.seed),
        ("actor_rollout_ref.model.path", model_path),
        ("actor_rollout_ref.actor.optim.lr", plan.learning_rate),
        ("actor_rollout_ref.actor.ppo_mini_batch_size", plan.prompts_per_step),  # one update per step
        ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", m),
        ("actor_rollout_ref.actor.ppo_epochs", plan.ppo_epochs),
        ("actor_rollout_ref.actor.use_kl_loss", not ppo and kl),
    ]
    if plan.clip_range is not None:
        o.append(("actor_rollout_ref.actor.clip_ratio", plan.clip_range))
    if not ppo and kl:  # GRPO: KL as a loss term (k3, "low_var_kl"), not in the reward
        o += [("actor_rollout_ref.actor.kl_loss_coef", plan.kl_coef),
              ("actor_rollout_ref.actor.kl_loss_type", "low_var_kl")]
    o += [
        ("actor_rollout_ref.rollout.name", "vllm"),
        ("actor_rollout_ref.rollout.n", plan.generations),
        ("actor_rollout_ref.rollout.temperature", plan.temperature),
        ("actor_rollout_ref.rollout.tensor_model_parallel_size", plan.tensor_parallel),
        ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", m),
        ("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu", m),
        ("algorithm.use_kl_in_reward", ppo and kl),
    ]
    if ppo:
        if kl:
            o.append(("algorithm.kl_ctrl.kl_coef", plan.kl_coef))
        if plan.gamma is not None:
            o.append(("algorithm.gamma", plan.gamma))
        if plan.gae_lambda is not None:
            o.append(("algorithm.lam", plan.gae_lambda))
        o += [("critic.model.path", model_path),  # reads the policy's tokens
              ("critic.optim.lr", plan.critic_learning_rate),
              ("critic.ppo_micro_batch_size_per_gpu", m)]
    if reward_model_path:
        o += [("reward_model.enable", True),
              ("reward_model.model.path", reward_model_path),
              ("reward_model.micro_batch_size_per_gpu", m),
              ("data.return_raw_chat", True)]  # the reward model re-templates the raw chat with its tokenizer
    else:
        o += [("reward_model.enable", False)]
    if reward_fn_path:
        o += [("custom_reward_function.path", reward_fn_path),
              ("custom_reward_function.name", str(settings.get("reward_function_name") or "compute_score"))]
    o += [
        ("trainer.nnodes", plan.nodes),
        ("trainer.n_gpus_per_node", plan.gpus_per_node),
        ("trainer.total_training_steps", plan.steps),
        ("trainer.total_epochs", epochs),
        ("trainer.project_name", plan.project_name),
        ("trainer.experiment_name", plan.experiment_name),
        ("trainer.logger", ["console"]),
        ("trainer.default_local_dir", plan.save_dir),
    ]
    if plan.checkpoint_every:
        o += [("trainer.save_freq", plan.checkpoint_every), ("trainer.test_freq", plan.checkpoint_every)]
    notes.append(f"{plan.steps} steps over {epochs} epoch(s) of {prompts // plan.prompts_per_step} batches")
    notes += _save_note(plan)

    argv = ["python3", "-m", "verl.trainer.main_ppo", *(f"{key}={_hydra_value(value)}" for key, value in o)]
    return ScaleOutSpec(engine="verl", files=[out_dir / TRAIN_FILE, out_dir / VAL_FILE], entrypoint=shlex.join(argv),
                        argv=argv, runtime_env=_runtime_env(plan, out_dir), source=VERL_SOURCE, notes=notes)


_HYDRA_PLAIN = re.compile(r"[A-Za-z0-9_./~:@+-]+")


def _hydra_value(value: object) -> str:
    """A value in Hydra's override grammar: lowercase booleans, [a,b] lists, and anything with
    characters Hydra would read as syntax in single quotes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    text = str(value)
    if _HYDRA_PLAIN.fullmatch(text) and text.lower() not in ("true", "false", "null"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ---------------------------------------------------------------------------- Ray Jobs REST API

TERMINAL = ("STOPPED", "SUCCEEDED", "FAILED")
STATUSES = ("PENDING", "RUNNING", *TERMINAL)
MAX_PACKAGE_BYTES = 512 * 1024 * 1024  # Ray's GCS package limit (GRPC_CPP_MAX_MESSAGE_SIZE)


class RayUnavailable(ConnectionError):
    """The Ray dashboard could not be reached (refused, unknown host, timed out). Worth a retry."""

    def __init__(self, address: str, reason: str):
        super().__init__(f"Ray at {address} is unavailable: {reason}")
        self.address, self.reason = address, reason


class RayJobError(RuntimeError):
    """The dashboard answered with an error status; `body` is what it said."""

    def __init__(self, method: str, url: str, status: int, body: str):
        super().__init__(f"{method} {url} answered {status}: {body.strip()[:2000]}")
        self.method, self.url, self.status, self.body = method, url, status, body


class RayJobNotFound(RayJobError):
    """404: the cluster does not know this job (a typo, or the cluster was restarted)."""


@dataclass(frozen=True)
class JobState:
    """A job as Ray's GET /api/jobs/{id} reports it (JobDetails)."""

    submission_id: str
    status: str  # PENDING | RUNNING | STOPPED | SUCCEEDED | FAILED
    message: str
    start_time: datetime | None
    end_time: datetime | None
    error_type: str | None = None
    driver_exit_code: int | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_details(cls, details: dict) -> JobState:
        def when(ms):  # Ray reports milliseconds since the epoch; 0/None before it starts
            return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None

        return cls(submission_id=details.get("submission_id") or details.get("job_id") or "",
                   status=str(details["status"]), message=details.get("message") or "",
                   start_time=when(details.get("start_time")), end_time=when(details.get("end_time")),
                   error_type=details.get("error_type"), driver_exit_code=details.get("driver_exit_code"))


class RayJobs:
    """A small client of Ray's Job Submission REST API (the dashboard's HTTP server, port 8265 by
    default): POST /api/jobs/, GET /api/jobs/{id}, POST /api/jobs/{id}/stop, GET /api/jobs/{id}/logs,
    and GET/PUT /api/packages/gcs/{name} to upload a working_dir as the `ray` CLI does.
    urllib only: no Ray install needed on our side."""

    def __init__(self, address: str, *, timeout: float = 10.0, upload_timeout: float = 300.0,
                 headers: dict[str, str] | None = None):
        address = address.strip().rstrip("/")
        if address.startswith("ray://"):
            raise ValueError(f"{address} is a Ray Client address; the Jobs API is the dashboard's, e.g. http://head:8265")
        if "://" not in address:
            address = "http://" + address
        self.address = address
        self.timeout, self.upload_timeout = timeout, upload_timeout
        self.headers = dict(headers or {})

    # -- the API

    def version(self) -> dict:
        return self._json("GET", "/api/version")

    def submit(self, *, entrypoint: str, submission_id: str, runtime_env: dict | None = None,
               metadata: dict | None = None) -> str:
        """Submit; returns the submission id. A local working_dir is uploaded first. Submitting an
        id the cluster already runs with the same entrypoint returns that id (a retry after a lost
        answer must not fail)."""
        body = {"entrypoint": entrypoint, "submission_id": submission_id,
                "runtime_env": self.upload_runtime_env(runtime_env or {}),
                "metadata": {str(k): str(v) for k, v in (metadata or {}).items()}}  # Ray wants str -> str
        try:
            answer = self._json("POST", "/api/jobs/", body)
        except RayJobError as error:
            try:
                known = self._json("GET", f"/api/jobs/{_quote(submission_id)}")
            except RayJobError:
                raise error from None
            if known.get("entrypoint") == entrypoint:
                return submission_id
            raise
        return answer.get("submission_id") or answer.get("job_id") or submission_id

    def status(self, submission_id: str) -> JobState:
        return JobState.from_details(self._json("GET", f"/api/jobs/{_quote(submission_id)}"))

    def stop(self, submission_id: str) -> bool:
        """Ask Ray to stop the job; False when it had already ended."""
        return bool(self._json("POST", f"/api/jobs/{_quote(submission_id)}/stop").get("stopped"))

    def logs(self, submission_id: str) -> str:
        return str(self._json("GET", f"/api/jobs/{_quote(submission_id)}/logs").get("logs", ""))

    # -- working_dir upload (what JobSubmissionClient does before POST /api/jobs/)

    def upload_runtime_env(self, runtime_env: dict) -> dict:
        env = dict(runtime_env)
        working_dir = env.get("working_dir")
        if working_dir and "://" not in str(working_dir):
            if not Path(working_dir).is_dir():
                raise ValueError(f"working_dir {working_dir} is neither a URI nor a local directory")
            env["working_dir"] = self.upload_dir(Path(working_dir))
        return env

    def upload_dir(self, directory: Path) -> str:
        """Zip a directory's files (at the archive's root, as Ray's create_package does) and put it in
        the cluster's GCS under a content-addressed name, unless it is already there. Returns the
        gcs:// URI to use as working_dir."""
        files = sorted(p for p in Path(directory).rglob("*") if p.is_file())
        digest = hashlib.sha1()
        for p in files:
            digest.update(p.relative_to(directory).as_posix().encode() + b"\0")
            with p.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        name = f"_ray_pkg_{digest.hexdigest()}.zip"
        path = f"/api/packages/gcs/{name}"
        try:
            self._request("GET", path)
            return f"gcs://{name}"
        except RayJobNotFound:
            pass
        with tempfile.TemporaryFile() as archive:
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
                for p in files:
                    z.write(p, p.relative_to(directory).as_posix())
            size = archive.tell()
            if size > MAX_PACKAGE_BYTES:
                raise ValueError(f"{directory} zips to {size} bytes, over Ray's {MAX_PACKAGE_BYTES}-byte package "
                                 "limit: put the files on storage the cluster can read and set data_dir")
            archive.seek(0)
            self._request("PUT", path, data=archive, content_type="application/zip", length=size,
                          timeout=self.upload_timeout)
        return f"gcs://{name}"

    # -- HTTP

    def _json(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        raw = self._request(method, path, data=data, content_type="application/json" if data else None,
                            length=len(data) if data else None)
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            raise RayJobError(method, self.address + path, 200, f"not JSON: {raw[:500]!r}") from None

    def _request(self, method: str, path: str, *, data=None, content_type: str | None = None,
                 length: int | None = None, timeout: float | None = None) -> bytes:
        url = self.address + path
        request = urllib.request.Request(url, data=data, method=method, headers=dict(self.headers))
        if content_type:
            request.add_header("Content-Type", content_type)
        if length is not None:
            request.add_header("Content-Length", str(length))
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            body = error.read().decode("utf-8", "replace")
            kind = RayJobNotFound if error.code == 404 else RayJobError
            raise kind(method, url, error.code, body) from None
        except urllib.error.URLError as error:
            raise RayUnavailable(self.address, str(error.reason)) from None
        except (TimeoutError, ConnectionError) as error:
            raise RayUnavailable(self.address, f"{type(error).__name__}: {error}") from None


def _quote(submission_id: str) -> str:
    return urllib.parse.quote(submission_id, safe="")

