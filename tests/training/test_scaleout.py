"""Scale-out without a cluster: the files OpenRLHF and verl read, checked against those projects'
documented schemas and loaded as they load them; the command lines parsed against their documented
flags and config keys (copies below, with the file and commit they come from) and their own
start-up checks; and RayJobs against an in-test server speaking Ray's Job Submission REST API
(and, when the `ray` CLI is installed, against a real local Ray). No database."""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rewards.set_formats import prompt_rows
from training.scaleout import (
    JobState,
    RayJobError,
    RayJobNotFound,
    RayJobs,
    RayUnavailable,
    ScaleOutSpec,
    openrlhf_spec,
    openrlhf_submit_command,
    ray_submit_command,
    verl_spec,
)


def set_pairs(prompts: int = 40, *, held_out_every: int = 5) -> list[dict]:
    """Pairs as rewards.services.sets.set_pairs yields them, two per prompt; every
    held_out_every-th prompt in the test split, odd ones with a ground truth."""
    pairs = []
    for i in range(prompts):
        messages = [{"role": "user", "content": f"What is {i} + 2? Ünïcode ✓"}]
        if i % 7 == 0:
            messages = [{"role": "system", "content": "Be brief."}, *messages]
        for side in range(2):
            pairs.append({"prompt_id": i, "key": f"p{i}:{side}", "messages": messages, "domain": "maths" if i % 3 else "",
                          "ground_truth": str(i + 2) if i % 2 else None,
                          "split": "test" if held_out_every and i % held_out_every == 0 else "train"})
    return pairs


CLUSTER = {"nodes": 2, "gpus_per_node": 4, "prompts_per_step": 4, "generations": 4, "steps": 6, "kl_coef": 0.01,
           "learning_rate": 5e-7, "max_new_tokens": 256, "seed": 3, "experiment_name": "run-7", "ppo_epochs": 2,
           "clip_range": 0.2, "gamma": 1.0, "gae_lambda": 0.95,
           "verifiers": ["math"], "reward_weights": {"reward_model": 1.0}}  # an RL run's other keys are ignored


# ------------------------------------------------------------------------------------------ OpenRLHF

# openrlhf/cli/train_ppo_ray.py, OpenRLHF/OpenRLHF commit 17b714b5992dd7e4538c21358bc051044496c05d:
# every parser.add_argument, as "name kind" (flag = store_true; floatxN/str* = nargs; a|b = choices).
OPENRLHF_ARGPARSE = """
ref_num_nodes int; ref_num_gpus_per_node int; reward_num_nodes int; reward_num_gpus_per_node int
colocate_actor_ref flag; actor_num_nodes int; actor_num_gpus_per_node int; critic_num_nodes int
critic_num_gpus_per_node int; colocate_critic_reward flag; colocate_all_models flag
vllm_num_engines int; vllm_tensor_parallel_size int; vllm_sync_backend str; vllm_sync_with_ray flag
enable_prefix_caching flag; enforce_eager flag; vllm_enable_sleep flag; vllm_gpu_memory_utilization float
enable_vllm_is_correction flag; vllm_is_truncated_threshold floatx2; use_icepop flag
async_train flag; async_queue_size int
eval_steps int; save_steps int; logging_steps int; ckpt_path str; save_hf_ckpt flag; disable_ds_ckpt flag
max_ckpt_num int; max_ckpt_mem int; load_checkpoint flag; use_ds_universal_ckpt flag
local_rank int; zero_stage int; gradient_checkpointing flag; deepcompile flag; param_dtype bf16|fp16|fp32
enable_ema flag; ema_beta float; zpg int; adam_offload flag; actor_init_on_gpu flag; attn_implementation str
use_liger_kernel flag; grad_accum_dtype str; overlap_comm flag; gradient_checkpointing_use_reentrant flag
disable_fast_tokenizer flag; deepspeed_enable_sleep flag; ds_tensor_parallel_size int
packing_samples flag; use_dynamic_batch flag; rollout_max_tokens_per_gpu int; train_max_tokens_per_gpu int
load_in_4bit flag; lora_rank int; lora_alpha int; target_modules str*; lora_dropout float
save_path str; num_episodes int; rollout_batch_size int; vllm_generate_batch_size int
micro_rollout_batch_size int; max_epochs int; prompt_max_len int; generate_max_len int; max_len int
max_samples int; max_norm float; l2 float; ptx_coef float; eps_clip float; eps_clip_low_high floatx2
dual_clip float; value_clip float; lambd float; gamma float; micro_train_batch_size int; train_batch_size int
normalize_reward flag; top_p float; temperature float; seed int; full_determinism flag
freezing_actor_steps int; n_samples_per_prompt int; save_value_network flag; actor_learning_rate float
critic_learning_rate float; lr_warmup_ratio float; lr_scheduler str; kl_target float; kl_horizon int
init_kl_coef float; policy_loss_type ppo|gspo; kl_estimator k1|k2|k3; aux_loss_coef float
entropy_loss_coef float; adam_betas floatx2; reward_clip_range floatx2
advantage_estimator gae|reinforce|rloo|reinforce_baseline|group_norm|dr_grpo; use_kl_loss flag
no_advantage_std_norm flag; overlong_buffer_len float; overlong_penalty_factor float
ring_attn_size int; ring_head_stride int
pretrain str; reward_pretrain str; remote_rm_url str; critic_pretrain str; value_head_prefix str
ref_reward_offload flag; agent_func_path str
prompt_data str; prompt_data_probs str; prompt_split str; eval_dataset str; eval_split str
eval_temperature float; eval_n_samples_per_prompt int; input_key str; label_key str; input_template str
apply_chat_template flag
use_wandb str; wandb_org str; wandb_group str; wandb_project str; wandb_run_name str
dynamic_filtering flag; dynamic_filtering_reward_range floatx2; use_tensorboard str; perf flag; use_ms flag
"""
OPENRLHF_DEFAULTS = {"ref_num_nodes": 1, "ref_num_gpus_per_node": 8, "reward_num_nodes": 1, "reward_num_gpus_per_node": 8,
                     "actor_num_nodes": 1, "actor_num_gpus_per_node": 8, "critic_num_nodes": 1,
                     "critic_num_gpus_per_node": 8, "vllm_tensor_parallel_size": 1, "micro_rollout_batch_size": 8,
                     "micro_train_batch_size": 4, "train_batch_size": 128, "rollout_batch_size": 1024,
                     "n_samples_per_prompt": 1, "init_kl_coef": 0.01, "advantage_estimator": "gae", "input_key": "input",
                     "kl_estimator": "k1", "ring_attn_size": 1, "ds_tensor_parallel_size": 1, "prompt_split": "train",
                     "max_samples": 1e8}


class _Refused(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _Refused(message)


def openrlhf_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="openrlhf.cli.train_ppo_ray", allow_abbrev=False)
    for entry in re.split(r"[;\n]", OPENRLHF_ARGPARSE):
        if not entry.strip():
            continue
        name, kind = entry.split()
        option: dict = {"default": OPENRLHF_DEFAULTS.get(name)}
        if kind == "flag":
            option = {"action": "store_true"}
        elif kind in ("int", "float", "str"):
            option["type"] = {"int": int, "float": float, "str": str}[kind]
        elif kind == "floatx2":
            option.update(type=float, nargs=2)
        elif kind == "str*":
            option.update(type=str, nargs="*")
        else:
            option["choices"] = kind.split("|")
        parser.add_argument(f"--{name}", **option)
    return parser


def openrlhf_args(spec: ScaleOutSpec) -> argparse.Namespace:
    argv = shlex.split(spec.entrypoint)
    assert argv[:3] == ["python3", "-m", "openrlhf.cli.train_ppo_ray"]
    assert argv == spec.argv
    args = openrlhf_parser().parse_args(argv[3:])  # refuses unknown flags, missing values, bad types and choices
    # What train_ppo_ray.py checks after parsing, and DeepSpeed's batch arithmetic.
    if args.advantage_estimator != "gae":
        args.critic_pretrain = None
    elif args.critic_pretrain is None:
        args.critic_pretrain = args.reward_pretrain.split(",")[0]
    if args.advantage_estimator in ("rloo", "reinforce_baseline", "group_norm"):
        assert args.n_samples_per_prompt > 1
    if args.packing_samples:
        assert args.vllm_num_engines > 0
    actor_gpus = args.actor_num_nodes * args.actor_num_gpus_per_node
    if (args.colocate_actor_ref or args.colocate_all_models) and args.init_kl_coef > 0:
        assert (args.actor_num_nodes, args.actor_num_gpus_per_node) == (args.ref_num_nodes, args.ref_num_gpus_per_node)
    if args.vllm_num_engines and args.colocate_all_models and not args.async_train:
        assert actor_gpus == args.vllm_num_engines * args.vllm_tensor_parallel_size
    if args.colocate_all_models:  # critic and reward model live in the actor's placement group
        for role in ("reward", "critic"):
            assert getattr(args, f"{role}_num_nodes") * getattr(args, f"{role}_num_gpus_per_node") == actor_gpus
    assert (args.n_samples_per_prompt * args.rollout_batch_size // args.micro_rollout_batch_size
            >= actor_gpus // args.ring_attn_size // args.ds_tensor_parallel_size)
    assert args.train_batch_size % (args.micro_train_batch_size * actor_gpus) == 0
    return args


def test_openrlhf_prompt_file_has_the_keys_the_command_names_and_loads_as_openrlhf_loads_it(tmp_path):
    datasets = pytest.importorskip("datasets")
    spec = openrlhf_spec(prompt_rows=prompt_rows(set_pairs(), "openrlhf-prompt"), out_dir=tmp_path, pretrain="/m/policy",
                         reward_pretrain="/m/rm", settings={**CLUSTER, "algorithm": "grpo"})
    args = openrlhf_args(spec)
    assert spec.files == [tmp_path / "prompts.jsonl"] and args.prompt_data == "prompts.jsonl"
    assert spec.runtime_env == {"working_dir": str(tmp_path)}  # the command's relative paths resolve there

    lines = (tmp_path / "prompts.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 40
    rows = [json.loads(line) for line in lines]
    assert all(set(r) == {args.input_key, args.label_key} for r in rows)
    assert all(isinstance(r[args.input_key], str) and r[args.input_key] for r in rows)
    assert rows[1] == {"input": "What is 1 + 2? Ünïcode ✓", "label": "3"} and rows[2]["label"] == ""
    assert rows[0]["input"].startswith("System: Be brief.")

    # openrlhf/utils/utils.py blending_datasets: a local .jsonl is load_dataset("json", data_files=...)[prompt_split].
    loaded = datasets.load_dataset("json", data_files=str(tmp_path / args.prompt_data),
                                   cache_dir=str(tmp_path / "hf"))[args.prompt_split]
    assert {args.input_key, args.label_key} <= set(loaded.column_names) and len(loaded) == 40


@pytest.mark.parametrize("algorithm", ["ppo", "grpo"])
def test_openrlhf_command_uses_only_documented_flags_and_passes_openrlhfs_own_checks(tmp_path, algorithm):
    spec = openrlhf_spec(prompt_rows=prompt_rows(set_pairs(), "openrlhf-prompt"), out_dir=tmp_path, pretrain="/m/policy",
                         reward_pretrain="/m/rm", settings={**CLUSTER, "algorithm": algorithm})
    args = openrlhf_args(spec)
    assert (args.pretrain, args.reward_pretrain, args.save_path) == ("/m/policy", "/m/rm", "checkpoints")
    assert args.actor_num_nodes == 2 and args.actor_num_gpus_per_node == 4 and args.vllm_num_engines == 8
    assert args.rollout_batch_size == 4 and args.n_samples_per_prompt == 4 and args.train_batch_size == 16
    assert args.generate_max_len == 256 and args.seed == 3 and args.actor_learning_rate == 5e-7
    assert args.init_kl_coef == 0.01 and args.apply_chat_template
    # 6 steps of 4 prompts fit in one pass over 40 prompts: capped exactly.
    assert args.num_episodes == 1 and args.max_samples == 24
    if algorithm == "grpo":
        assert args.advantage_estimator == "group_norm" and args.critic_pretrain is None
        assert "--critic_num_nodes" not in spec.argv and "--critic_learning_rate" not in spec.argv
        assert args.use_kl_loss and args.kl_estimator == "k3"
    else:
        assert args.advantage_estimator == "gae" and args.critic_pretrain == "/m/policy"
        assert args.critic_num_nodes == 2 and args.critic_learning_rate > 0
        assert not args.use_kl_loss and args.kl_estimator == "k1"
        assert (args.gamma, args.lambd) == (1.0, 0.95)
    assert args.eps_clip == 0.2 and args.max_epochs == 2


def test_openrlhf_counts_episodes_so_more_steps_than_prompts_round_up_to_whole_passes(tmp_path):
    spec = openrlhf_spec(prompt_rows=prompt_rows(set_pairs(10), "openrlhf-prompt"), out_dir=tmp_path, pretrain="/p",
                         reward_pretrain="/r", settings={**CLUSTER, "steps": 5})
    args = openrlhf_args(spec)
    assert args.num_episodes == 3 and args.max_samples == 1e8  # no cap; 10 prompts make 2 batches a pass
    assert any("3 episode(s)" in n for n in spec.notes)


def test_ray_job_submit_line_uses_rays_documented_cli_flags(tmp_path):
    spec = openrlhf_spec(prompt_rows=prompt_rows(set_pairs(), "openrlhf-prompt"), out_dir=tmp_path, pretrain="/p",
                         reward_pretrain="/r", settings=CLUSTER)
    line = openrlhf_submit_command(spec, "http://head:8265")
    # `ray job submit` options (docs.ray.io Ray Jobs CLI reference; ray/dashboard/modules/job/cli.py, Ray 2.60.0).
    documented = {"--address", "--job-id", "--submission-id", "--runtime-env", "--runtime-env-json", "--working-dir",
                  "--metadata-json", "--entrypoint-num-cpus", "--entrypoint-num-gpus", "--entrypoint-memory",
                  "--entrypoint-resources", "--entrypoint-label-selector", "--no-wait", "--verify", "--headers"}
    split = line.index("--")
    assert line[:3] == ["ray", "job", "submit"] and line[split + 1:] == spec.argv
    options = line[3:split]
    assert set(options[::2]) <= documented and options[options.index("--address") + 1] == "http://head:8265"
    assert json.loads(options[options.index("--runtime-env-json") + 1]) == spec.runtime_env
    with_id = ray_submit_command(spec, "http://head:8265", submission_id="run-7")
    assert with_id[with_id.index("--submission-id") + 1] == "run-7"


# ------------------------------------------------------------------------------------------ verl

# verl/trainer/config/_generated_ppo_trainer.yaml (ppo_trainer.yaml flattened), volcengine/verl commit
# 09d3a66b5d5f92ac82e386d4786f1b04afdbc525: the leaf keys of the sections we touch, with the type
# of their value (null defaults typed by what the key holds). Profiler, fsdp_config and
# rollout_correction subtrees left out.
VERL_KEYS = """
data: tokenizer str; use_shm bool; train_files str; val_files str; train_max_samples int; val_max_samples int
  prompt_key str; reward_fn_key str; max_prompt_length int; max_response_length int; train_batch_size int
  val_batch_size int; tool_config_path str; return_raw_input_ids bool; return_raw_chat bool
  return_full_prompt bool; shuffle bool; seed int; dataloader_num_workers int; image_patch_size int
  validation_shuffle bool; filter_overlong_prompts bool; filter_overlong_prompts_workers int; truncation str
  image_key str; video_key str; trust_remote_code bool; custom_cls.path str; custom_cls.name str
  return_multi_modal_inputs bool; sampler.class_path str; sampler.class_name str; datagen.path str
  datagen.name str; databuffer.enable bool; databuffer.keep_filtered bool
actor_rollout_ref: hybrid_engine bool; nccl_timeout int
actor_rollout_ref.model: path str; hf_config_path str; tokenizer_path str; use_shm bool; trust_remote_code bool
  custom_chat_template str; external_lib str; enable_gradient_checkpointing bool; enable_activation_offload bool
  use_remove_padding bool; lora_rank int; lora_alpha int; target_modules str; exclude_modules str
  lora_adapter_path str; use_liger bool; use_fused_kernels bool; fused_kernel_options.impl_backend str
actor_rollout_ref.actor: strategy str; ppo_mini_batch_size int; ppo_micro_batch_size int
  ppo_micro_batch_size_per_gpu int; use_dynamic_bsz bool; ppo_max_token_len_per_gpu int; clip_ratio float
  clip_ratio_low float; clip_ratio_high float; freeze_vision_tower bool; policy_loss.loss_mode str
  clip_ratio_c float; loss_agg_mode str; entropy_coeff float; use_kl_loss bool; use_torch_compile bool
  kl_loss_coef float; kl_loss_type str; ppo_epochs int; shuffle bool; checkpoint.save_contents list
  checkpoint.async_save bool; grad_clip float; ulysses_sequence_parallel_size int
  entropy_from_logits_with_chunking bool; entropy_checkpointing bool; use_remove_padding bool
  use_fused_kernels bool; optim.optimizer str; optim.optimizer_impl str; optim.lr float
  optim.lr_warmup_steps_ratio float; optim.total_training_steps int; optim.weight_decay float
  optim.lr_warmup_steps int; optim.betas list; optim.clip_grad float; optim.min_lr_ratio float
  optim.num_cycles float; optim.lr_scheduler_type str; optim.warmup_style str
actor_rollout_ref.ref: strategy str; use_torch_compile bool; log_prob_micro_batch_size int
  log_prob_micro_batch_size_per_gpu int; log_prob_use_dynamic_bsz bool; log_prob_max_token_len_per_gpu int
  ulysses_sequence_parallel_size int; entropy_from_logits_with_chunking bool; entropy_checkpointing bool
actor_rollout_ref.rollout: name str; mode str; temperature float; top_k int; top_p float; prompt_length int
  response_length int; dtype str; gpu_memory_utilization float; ignore_eos bool; enforce_eager bool
  free_cache_engine bool; tensor_model_parallel_size int; data_parallel_size int; expert_parallel_size int
  pipeline_model_parallel_size int; max_num_batched_tokens int; max_model_len int; max_num_seqs int
  enable_chunked_prefill bool; enable_prefix_caching bool; load_format str; log_prob_micro_batch_size int
  log_prob_micro_batch_size_per_gpu int; log_prob_use_dynamic_bsz bool; log_prob_max_token_len_per_gpu int
  disable_log_stats bool; do_sample bool; n int; over_sample_rate float; multi_stage_wake_up bool
  val_kwargs.top_k int; val_kwargs.top_p float; val_kwargs.temperature float; val_kwargs.n int
  val_kwargs.do_sample bool; multi_turn.enable bool; calculate_log_probs bool; agent.num_workers int
  update_weights_bucket_megabytes int; skip_rollout bool; skip_tokenizer_init bool; layered_summon bool
critic: rollout_n int; strategy str; enable bool; ppo_mini_batch_size int; ppo_micro_batch_size int
  ppo_micro_batch_size_per_gpu int; use_dynamic_bsz bool; ppo_max_token_len_per_gpu int
  forward_max_token_len_per_gpu int; ppo_epochs int; shuffle bool; cliprange_value float; loss_agg_mode str
  checkpoint.save_contents list; forward_micro_batch_size int; forward_micro_batch_size_per_gpu int
  ulysses_sequence_parallel_size int; grad_clip float; optim.lr float; optim.lr_warmup_steps_ratio float
  optim.total_training_steps int; optim.weight_decay float; optim.lr_warmup_steps int; optim.min_lr_ratio float
  optim.lr_scheduler_type str; optim.warmup_style str; model.path str; model.tokenizer_path str
  model.external_lib str; model.trust_remote_code bool; model.use_shm bool; model.enable_gradient_checkpointing bool
  model.enable_activation_offload bool; model.use_remove_padding bool; model.lora_rank int; model.lora_alpha int
  model.target_modules str
reward_model: enable bool; enable_resource_pool bool; n_gpus_per_node int; nnodes int; strategy str
  model.input_tokenizer str; model.path str; model.external_lib str; model.trust_remote_code bool
  model.use_shm bool; model.use_remove_padding bool; model.use_fused_kernels bool; micro_batch_size int
  micro_batch_size_per_gpu int; max_length int; use_dynamic_bsz bool; forward_max_token_len_per_gpu int
  reward_manager str; launch_reward_fn_async bool; sandbox_fusion.url str; sandbox_fusion.max_concurrent int
  sandbox_fusion.memory_limit_mb int; ulysses_sequence_parallel_size int
custom_reward_function: path str; name str
algorithm: gamma float; lam float; adv_estimator str; norm_adv_by_std_in_grpo bool; use_kl_in_reward bool
  kl_penalty str; kl_ctrl.type str; kl_ctrl.kl_coef float; kl_ctrl.horizon int; kl_ctrl.target_kl float
  use_pf_ppo bool; pf_ppo.reweight_method str; pf_ppo.weight_pow float
trainer: balance_batch bool; total_epochs int; total_training_steps int; project_name str; experiment_name str
  logger list; log_val_generations int; rollout_data_dir str; validation_data_dir str; nnodes int
  n_gpus_per_node int; save_freq int; esi_redundant_time int; resume_mode str; resume_from_path str
  val_before_train bool; val_only bool; test_freq int; critic_warmup int; default_hdfs_dir str
  del_local_ckpt_after_load bool; default_local_dir str; max_actor_ckpt_to_keep int
  max_critic_ckpt_to_keep int; ray_wait_register_center_timeout int; device str; use_legacy_worker_impl str
"""


def verl_keys() -> dict[str, type]:
    keys: dict[str, type] = {}
    section = ""
    for line in VERL_KEYS.strip().splitlines():
        if not line.startswith(" "):
            section, line = line.split(":", 1)
        for entry in line.split(";"):
            name, kind = entry.split()
            keys[f"{section}.{name}"] = {"str": str, "int": int, "float": float, "bool": bool, "list": list}[kind]
    return keys


def hydra_value(text: str):
    """Enough of Hydra's override grammar for what we emit."""
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?(\d+\.\d*|\d*\.\d+|\d+)(e-?\d+)?", text):
        return float(text)
    if text.startswith("[") and text.endswith("]"):
        return [hydra_value(v) for v in text[1:-1].split(",") if v]
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("\\'", "'").replace("\\\\", "\\")
    return text


def verl_overrides(spec: ScaleOutSpec) -> dict:
    argv = shlex.split(spec.entrypoint)
    assert argv == spec.argv and argv[:3] == ["python3", "-m", "verl.trainer.main_ppo"]
    known = verl_keys()
    config: dict = {}
    for override in argv[3:]:
        key, _, text = override.partition("=")
        assert not key.startswith("+"), f"{key}: appending keys is not needed, every key is in the config"
        assert key in known, f"{key} is not a key of verl's ppo_trainer.yaml"
        value = hydra_value(text)
        expected = known[key]
        assert isinstance(value, expected) or (expected is float and type(value) is int), f"{key}={text}"
        assert key not in config, f"{key} given twice"
        config[key] = value
    return config


def verl_check(c: dict) -> None:
    """verl's own start-up checks (verl/utils/config.py validate_config, ActorConfig/CriticConfig
    validate, main_ppo's need_critic and need_reference_policy) on the overrides given."""
    n_gpus = c["trainer.n_gpus_per_node"] * c["trainer.nnodes"]
    n = c.get("actor_rollout_ref.rollout.n", 1)
    assert c.get("actor_rollout_ref.rollout.name"), "rollout.name is ??? (mandatory) in the config"
    assert c["data.train_batch_size"] * n % n_gpus == 0
    mini, micro = c["actor_rollout_ref.actor.ppo_mini_batch_size"], c["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu"]
    assert mini <= c["data.train_batch_size"] and mini * n // n_gpus > 0 and (mini * n // n_gpus) % micro == 0
    assert c.get("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu")
    if c.get("algorithm.use_kl_in_reward") or c.get("actor_rollout_ref.actor.use_kl_loss"):
        assert c.get("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu")
    if c.get("reward_model.enable"):
        assert c.get("reward_model.micro_batch_size_per_gpu") and c.get("reward_model.model.path")
    if c["algorithm.adv_estimator"] == "gae":
        assert c.get("critic.ppo_micro_batch_size_per_gpu") and c.get("critic.model.path")


def test_verl_parquet_has_the_schema_rlhfdataset_documents_and_prompt_key_names_a_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    datasets = pytest.importorskip("datasets")
    spec = verl_spec(prompt_rows=prompt_rows(set_pairs(), "verl"), out_dir=tmp_path, model_path="/m/policy",
                     reward_model_path="/m/rm", settings=CLUSTER)
    config = verl_overrides(spec)
    assert spec.files == [tmp_path / "train.parquet", tmp_path / "val.parquet"]
    assert (config["data.train_files"], config["data.val_files"]) == ("train.parquet", "val.parquet")

    # docs/preparation/prepare_data.rst: data_source, prompt (chat messages), ability, reward_model
    # {style, ground_truth}, extra_info.
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    for name, rows in (("train.parquet", 32), ("val.parquet", 8)):  # every 5th of 40 prompts is held out
        table = pq.read_table(tmp_path / name)
        schema = table.schema
        assert table.num_rows == rows
        assert schema.field("data_source").type == pa.string() and schema.field("ability").type == pa.string()
        assert schema.field("prompt").type == pa.list_(message)
        reward = schema.field("reward_model").type
        assert pa.types.is_struct(reward) and {reward.field(i).name for i in range(reward.num_fields)} == {
            "style", "ground_truth"}
        assert all(reward.field(i).type == pa.string() for i in range(reward.num_fields))
        assert pa.types.is_struct(schema.field("extra_info").type)
        assert config["data.prompt_key"] in schema.names
        assert "data_source" in schema.names  # data.reward_fn_key's default
        splits = set(table.column("extra_info").combine_chunks().field("split").to_pylist())
        assert splits == ({"test"} if name == "val.parquet" else {"train"})

    # verl/utils/dataset/rl_dataset.py RLHFDataset: datasets.load_dataset("parquet", data_files=...)["train"],
    # then row[prompt_key] goes to tokenizer.apply_chat_template.
    loaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "train.parquet"),
                                   cache_dir=str(tmp_path / "hf"))["train"]
    row = loaded[0]
    assert isinstance(row[config["data.prompt_key"]], list)
    assert all(set(m) == {"role", "content"} for m in row[config["data.prompt_key"]])
    truths = {r["reward_model"]["style"]: r["reward_model"]["ground_truth"] for r in loaded}
    assert set(truths) == {"rule", "model"} and truths["model"] == ""


def test_verl_without_a_held_out_split_validates_on_a_slice_of_training_prompts(tmp_path):
    import pyarrow.parquet as pq

    spec = verl_spec(prompt_rows=prompt_rows(set_pairs(held_out_every=0), "verl"), out_dir=tmp_path, model_path="/p",
                     reward_model_path="/r", settings=CLUSTER)
    assert pq.read_table(tmp_path / "train.parquet").num_rows == 40
    assert pq.read_table(tmp_path / "val.parquet").num_rows == 40  # all of them, under the 64-row cap
    assert any("no held-out split" in n for n in spec.notes)


@pytest.mark.parametrize("algorithm", ["ppo", "grpo"])
def test_verl_overrides_are_documented_keys_and_pass_verls_own_checks(tmp_path, algorithm):
    spec = verl_spec(prompt_rows=prompt_rows(set_pairs(), "verl"), out_dir=tmp_path, model_path="/m/policy",
                     reward_model_path="/m/rm", settings={**CLUSTER, "algorithm": algorithm, "checkpoint_every": 2})
    c = verl_overrides(spec)
    verl_check(c)
    assert c["actor_rollout_ref.model.path"] == "/m/policy" and c["actor_rollout_ref.actor.optim.lr"] == 5e-7
    assert (c["trainer.nnodes"], c["trainer.n_gpus_per_node"]) == (2, 4)
    assert c["trainer.total_training_steps"] == 6 and c["trainer.total_epochs"] * (32 // 4) >= 6
    assert c["data.max_response_length"] == 256 and c["data.seed"] == 3 and c["trainer.logger"] == ["console"]
    assert c["reward_model.enable"] and c["reward_model.model.path"] == "/m/rm" and c["data.return_raw_chat"]
    assert c["trainer.experiment_name"] == "run-7" and c["trainer.save_freq"] == 2
    if algorithm == "grpo":
        assert c["algorithm.adv_estimator"] == "grpo" and c["actor_rollout_ref.rollout.n"] > 1
        assert not any(k.startswith("critic.") for k in c)
        assert c["actor_rollout_ref.actor.use_kl_loss"] and c["actor_rollout_ref.actor.kl_loss_coef"] == 0.01
        assert not c["algorithm.use_kl_in_reward"]
    else:
        assert c["algorithm.adv_estimator"] == "gae" and c["critic.model.path"] == "/m/policy"
        assert c["algorithm.use_kl_in_reward"] and c["algorithm.kl_ctrl.kl_coef"] == 0.01
        assert not c["actor_rollout_ref.actor.use_kl_loss"]
        assert (c["algorithm.gamma"], c["algorithm.lam"]) == (1.0, 0.95)
    assert c["actor_rollout_ref.actor.ppo_epochs"] == 2 and c["actor_rollout_ref.actor.clip_ratio"] == 0.2


def test_verl_without_a_reward_model_needs_a_reward_function_and_names_it(tmp_path):
    rows = list(prompt_rows(set_pairs(), "verl"))
    with pytest.raises(ValueError, match="reward function"):
        verl_spec(prompt_rows=rows, out_dir=tmp_path, model_path="/p", reward_model_path=None, settings=CLUSTER)
    spec = verl_spec(prompt_rows=rows, out_dir=tmp_path, model_path="/p", reward_model_path=None,
                     settings={**CLUSTER, "reward_function_path": "/shared/my reward.py"})
    c = verl_overrides(spec)
    verl_check(c)
    assert c["reward_model.enable"] is False and c["custom_reward_function.path"] == "/shared/my reward.py"
    assert c["custom_reward_function.name"] == "compute_score"


def test_a_shared_data_dir_replaces_the_upload_and_paths_become_absolute(tmp_path):
    spec = verl_spec(prompt_rows=prompt_rows(set_pairs(), "verl"), out_dir=tmp_path, model_path="/p",
                     reward_model_path="/r", settings={**CLUSTER, "data_dir": "/mnt/shared/run-7/",
                                                       "env_vars": {"HF_HOME": "/mnt/hf"}})
    c = verl_overrides(spec)
    assert c["data.train_files"] == "/mnt/shared/run-7/train.parquet"
    assert spec.runtime_env == {"env_vars": {"HF_HOME": "/mnt/hf"}}


@pytest.mark.parametrize("settings, message", [
    ({"algorithm": "dpo"}, "algorithm"),
    ({"algorithm": "grpo", "generations": 1}, "at least 2"),
    ({"prompts_per_step": 3, "generations": 2}, "multiple of nodes x gpus_per_node"),
    ({"vllm_tensor_parallel_size": 3}, "vllm_tensor_parallel_size"),
    ({"prompts_per_step": 64}, "cannot fill one batch"),  # 40 prompts
    ({"kl_coef": -0.1}, "negative"),
])
def test_settings_neither_engine_could_run_are_refused_with_the_reason(tmp_path, settings, message):
    for build in (
        lambda: openrlhf_spec(prompt_rows=prompt_rows(set_pairs(held_out_every=0), "openrlhf-prompt"),
                              out_dir=tmp_path / "o", pretrain="/p", reward_pretrain="/r",
                              settings={**CLUSTER, "steps": 100, **settings}),
        lambda: verl_spec(prompt_rows=prompt_rows(set_pairs(held_out_every=0), "verl"), out_dir=tmp_path / "v",
                          model_path="/p", reward_model_path="/r", settings={**CLUSTER, **settings}),
    ):
        with pytest.raises(ValueError, match=message):
            build()


def test_describe_shows_one_flag_per_line(tmp_path):
    spec = openrlhf_spec(prompt_rows=[{"input": "q", "label": ""}] * 8, out_dir=tmp_path, pretrain="/p",
                         reward_pretrain="/r", settings={**CLUSTER, "steps": 1})
    text = spec.describe()
    assert "python3 -m openrlhf.cli.train_ppo_ray \\" in text and "\n    --pretrain /p \\" in text
    assert json.loads(json.dumps(spec.as_json()))["files"] == [str(tmp_path / "prompts.jsonl")]


# ------------------------------------------------------------------------------------------ Ray Jobs API

PENDING_MESSAGE = "Job has not started yet. It may be waiting for the runtime environment to be set up."
MESSAGES = {"RUNNING": "Job is currently running.", "SUCCEEDED": "Job finished successfully.",
            "STOPPED": "Job was intentionally stopped.", "FAILED": "Job entrypoint command failed with exit code 1."}


class FakeRay:
    """Ray's Job Submission REST API as ray/dashboard/modules/job/job_head.py serves it (Ray 2.60.0):
    the paths, status codes, plain-text error bodies and JobDetails JSON; jobs move on when the
    test says so."""

    def __init__(self):
        self.jobs: dict[str, dict] = {}
        self.packages: dict[str, bytes] = {}
        self.calls: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.handle(self, "GET")

            def do_POST(self):
                fake.handle(self, "POST")

            def do_PUT(self):
                fake.handle(self, "PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def advance(self, submission_id: str, status: str, *, logs: str = "") -> None:
        job = self.jobs[submission_id]
        now = int(time.time() * 1000)
        job.update(status=status, message=MESSAGES[status])
        if status == "RUNNING":
            job["start_time"] = now
        else:
            job.update(end_time=now, driver_exit_code=0 if status == "SUCCEEDED" else 1)
        job["_logs"] += logs

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        path = request.path
        self.calls.append((method, path))
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))

        def send(status: int, payload=None, text: str = "") -> None:
            data = json.dumps(payload).encode() if payload is not None else text.encode()
            request.send_response(status)
            request.send_header("Content-Type", "application/json" if payload is not None else "text/plain; charset=utf-8")
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)

        if method == "GET" and path == "/api/version":
            return send(200, {"version": "4", "ray_version": "2.60.0", "ray_commit": "fake", "session_name": "fake"})
        if match := re.fullmatch(r"/api/packages/(\w+)/([^/]+)", path):
            uri = f"{match[1]}://{match[2]}"
            if method == "PUT":
                self.packages[uri] = body
                return send(200)
            return send(200) if uri in self.packages else send(404, text=f"Package {uri} does not exist")
        if method == "POST" and path == "/api/jobs/":
            return self.submit(json.loads(body), send)
        if match := re.fullmatch(r"/api/jobs/([^/]+)(/stop|/logs)?", path):
            job = self.jobs.get(urllib.parse.unquote(match[1]))
            if job is None:
                return send(404, text=f"Job {urllib.parse.unquote(match[1])} does not exist")
            if match[2] == "/logs" and method == "GET":
                return send(200, {"logs": job["_logs"]})
            if match[2] == "/stop" and method == "POST":
                if job["status"] in ("STOPPED", "SUCCEEDED", "FAILED"):
                    return send(200, {"stopped": False})
                self.advance(job["submission_id"], "STOPPED")
                return send(200, {"stopped": True})
            if match[2] is None and method == "GET":
                return send(200, {k: v for k, v in job.items() if not k.startswith("_")})
        send(404, text="404: Not Found")

    def submit(self, data: dict, send) -> None:
        # JobSubmitRequest: entrypoint str; submission_id, runtime_env, metadata (str -> str) optional.
        if not isinstance(data.get("entrypoint"), str) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in (data.get("metadata") or {}).items()):
            return send(400, text="Traceback (most recent call last):\nTypeError: invalid JobSubmitRequest")
        submission_id = data.get("submission_id") or f"raysubmit_{len(self.jobs)}"
        if submission_id in self.jobs:  # Ray 2.60 wraps the job agent's 400 in a 500
            return send(500, text=f"RuntimeError: Request failed with status code 400: ValueError: Job with "
                                  f"submission_id {submission_id} already exists. Please use a different submission_id.")
        runtime_env = data.get("runtime_env") or {}
        status, message = "PENDING", PENDING_MESSAGE
        working_dir = runtime_env.get("working_dir")
        if working_dir and "://" not in working_dir:  # what a real head answers for a plain path
            status, message = "FAILED", (f"{working_dir} is not a valid URI. Passing directories or modules to be "
                                         "dynamically uploaded is only supported at the job level")
        elif working_dir and working_dir not in self.packages:
            status, message = "FAILED", f"Failed to download runtime_env file package {working_dir}"
        self.jobs[submission_id] = {
            "type": "SUBMISSION", "job_id": None, "submission_id": submission_id, "driver_info": None,
            "status": status, "entrypoint": data["entrypoint"], "message": message, "error_type": None,
            "start_time": None, "end_time": None, "metadata": data.get("metadata") or {}, "runtime_env": runtime_env,
            "driver_agent_http_address": None, "driver_node_id": None, "driver_exit_code": None, "_logs": ""}
        send(200, {"job_id": submission_id, "submission_id": submission_id})


@pytest.fixture
def fake_ray():
    fake = FakeRay()
    yield fake
    fake.close()


@pytest.fixture
def spec(tmp_path):
    return openrlhf_spec(prompt_rows=prompt_rows(set_pairs(), "openrlhf-prompt"), out_dir=tmp_path / "job",
                         pretrain="/p", reward_pretrain="/r", settings=CLUSTER)


def test_a_submitted_job_is_tracked_from_pending_through_running_to_succeeded(fake_ray, spec):
    ray = RayJobs(fake_ray.address)
    assert ray.version()["version"] == "4"
    submission_id = ray.submit(entrypoint=spec.entrypoint, submission_id="ps-run-7", runtime_env=spec.runtime_env,
                               metadata={"run": 7, "engine": "openrlhf"})
    assert submission_id == "ps-run-7"
    job = fake_ray.jobs["ps-run-7"]
    assert job["entrypoint"] == spec.entrypoint and job["metadata"] == {"run": "7", "engine": "openrlhf"}
    # The working_dir went up as a package first, as the ray CLI does, and the job names its URI.
    uri = job["runtime_env"]["working_dir"]
    assert re.fullmatch(r"gcs://_ray_pkg_[0-9a-f]{40}\.zip", uri) and uri in fake_ray.packages
    with zipfile.ZipFile(io.BytesIO(fake_ray.packages[uri])) as z:
        assert z.namelist() == ["prompts.jsonl"]
        assert z.read("prompts.jsonl") == spec.files[0].read_bytes()

    state = ray.status("ps-run-7")
    assert (state.status, state.message, state.start_time, state.terminal) == ("PENDING", PENDING_MESSAGE, None, False)
    fake_ray.advance("ps-run-7", "RUNNING", logs="episode 1\n")
    state = ray.status("ps-run-7")
    assert state.status == "RUNNING" and state.start_time is not None and not state.terminal
    fake_ray.advance("ps-run-7", "SUCCEEDED", logs="saved\n")
    state = ray.status("ps-run-7")
    assert state == JobState(submission_id="ps-run-7", status="SUCCEEDED", message="Job finished successfully.",
                             start_time=state.start_time, end_time=state.end_time, driver_exit_code=0)
    assert state.terminal and state.end_time >= state.start_time
    assert ray.logs("ps-run-7") == "episode 1\nsaved\n"


def test_the_same_directory_is_uploaded_once_and_a_retried_submit_is_not_an_error(fake_ray, spec):
    ray = RayJobs(fake_ray.address)
    ray.submit(entrypoint=spec.entrypoint, submission_id="a", runtime_env=spec.runtime_env)
    assert ray.submit(entrypoint=spec.entrypoint, submission_id="a", runtime_env=spec.runtime_env) == "a"
    ray.submit(entrypoint=spec.entrypoint, submission_id="b", runtime_env=spec.runtime_env)
    assert sum(method == "PUT" for method, _ in fake_ray.calls) == 1 and len(fake_ray.jobs) == 2
    with pytest.raises(RayJobError, match="already exists") as refused:
        ray.submit(entrypoint="python3 other.py", submission_id="a")
    assert refused.value.status == 500


def test_a_running_job_can_be_stopped_and_stopping_it_again_says_so(fake_ray, spec):
    ray = RayJobs(fake_ray.address)
    ray.submit(entrypoint=spec.entrypoint, submission_id="s", runtime_env=spec.runtime_env)
    fake_ray.advance("s", "RUNNING")
    assert ray.stop("s") is True
    state = ray.status("s")
    assert state.status == "STOPPED" and state.terminal and state.end_time is not None
    assert ray.stop("s") is False


def test_an_unknown_job_is_a_404_with_rays_words(fake_ray):
    ray = RayJobs(fake_ray.address)
    for call in (ray.status, ray.stop, ray.logs):
        with pytest.raises(RayJobNotFound, match="Job nope does not exist") as missing:
            call("nope")
        assert missing.value.status == 404


def test_a_plain_path_working_dir_that_does_not_exist_is_refused_before_any_request(fake_ray, tmp_path):
    with pytest.raises(ValueError, match="neither a URI nor a local directory"):
        RayJobs(fake_ray.address).submit(entrypoint="true", submission_id="x",
                                         runtime_env={"working_dir": str(tmp_path / "missing")})
    assert fake_ray.calls == []


def test_an_unreachable_cluster_is_ray_unavailable_naming_the_address():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RayUnavailable, match=f"127.0.0.1:{port}.*refused") as down:
        RayJobs(f"127.0.0.1:{port}", timeout=2).status("x")
    assert down.value.address == f"http://127.0.0.1:{port}"


def test_a_cluster_that_never_answers_times_out_as_unavailable():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts the connection, never answers
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(RayUnavailable, match="timed out"):
            RayJobs(address, timeout=0.3).version()
        assert time.monotonic() - started < 5


def test_a_ray_client_address_is_not_the_jobs_api():
    with pytest.raises(ValueError, match="dashboard"):
        RayJobs("ray://head:10001")


# ------------------------------------------------------------------------------------------ a real Ray

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def real_ray():
    """A one-CPU local Ray head with its dashboard (`ray start --head --block`, ended by signalling
    that process, which stops what it started). About 4 s to come up on two cores."""
    ray_cli = shutil.which("ray", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if ray_cli is None:
        pytest.skip("the `ray` CLI is not installed (pip install 'ray[default]'): RayJobs is tested against the "
                    "in-test server only")
    temp_dir = tempfile.mkdtemp(prefix="/tmp/psray")  # Ray's socket paths must stay short
    port = _free_port()
    with open(Path(temp_dir) / "head.log", "w") as log:
        head = subprocess.Popen(
            [ray_cli, "start", "--head", "--block", f"--port={_free_port()}", f"--dashboard-port={port}",
             "--dashboard-host=127.0.0.1", "--dashboard-agent-listen-port=0", f"--ray-client-server-port={_free_port()}",
             "--num-cpus=1", "--num-gpus=0", "--include-dashboard=true", "--disable-usage-stats",
             f"--temp-dir={temp_dir}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(address + "/api/version", timeout=1).read()
                break
            except OSError:
                if head.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("Ray did not start:\n" + (Path(temp_dir) / "head.log").read_text()[-3000:])
                time.sleep(0.3)
        yield address
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait(ray: RayJobs, submission_id: str, until, timeout: float = 60) -> JobState:
    deadline = time.monotonic() + timeout
    while not until(state := ray.status(submission_id)):
        assert time.monotonic() < deadline, state
        time.sleep(0.3)
    return state


def test_a_real_ray_runs_a_job_in_the_uploaded_files_and_stops_another(real_ray, spec):
    ray = RayJobs(real_ray, timeout=30)
    check = ("import json; rows = [json.loads(l) for l in open('prompts.jsonl')]; "
             "assert all(set(r) == {'input', 'label'} for r in rows); print('rows', len(rows))")
    entrypoint = f"{shlex.quote(sys.executable)} -c {shlex.quote(check)}"
    ray.submit(entrypoint=entrypoint, submission_id="ps-check", runtime_env=spec.runtime_env, metadata={"run": 7})
    state = _wait(ray, "ps-check", lambda s: s.terminal)
    assert state.status == "SUCCEEDED", ray.logs("ps-check")
    assert state.start_time and state.end_time and state.driver_exit_code == 0
    assert "rows 40" in ray.logs("ps-check")

    ray.submit(entrypoint="sleep 120", submission_id="ps-sleep")
    _wait(ray, "ps-sleep", lambda s: s.status == "RUNNING")
    assert ray.stop("ps-sleep") is True
    assert _wait(ray, "ps-sleep", lambda s: s.terminal).status == "STOPPED"
    with pytest.raises(RayJobNotFound):
        ray.status("ps-nope")
