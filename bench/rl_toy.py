"""GRPO (TRL) and PPO (ours) on the toy task, on this machine: a tiny locally built policy learns
to answer "what is 2 + 2 ?" with the math verifier as its only reward. Prints, per algorithm and
seed, the verifier reward over the first and last five steps, the wall time, steps/s and
completions/s. CPU figures say the loops work and what they cost; they are not GPU throughput.

    .venv/bin/python bench/rl_toy.py [--steps 20] [--seeds 0 1 2] [--lr-grpo 1e-2] [--lr-ppo 3e-3]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

TOY = {"prompt": [{"role": "user", "content": "what is 2 + 2 ?"}], "ground_truth": "4", "domain": "math", "prompt_id": 1}


def run(algorithm: str, seed: int, steps: int, lr: float, root: Path) -> dict:
    from training.backends import grpo_trl, ppo
    from training.backends.rl_common import HybridReward, SilentHooks
    from training.config import RLRunConfig
    from training.generators.tiny import build_tiny_policy

    policy = build_tiny_policy(root / f"policy-{seed}", seed=seed)
    config = RLRunConfig(algorithm=algorithm, policy_path=str(policy), verifiers=["math"], steps=steps, seed=seed,
                         generations=8, prompts_per_step=2, learning_rate=lr, max_new_tokens=4, kl_coef=0.01,
                         checkpoint_every=10_000)
    hooks = SilentHooks()
    backend = grpo_trl if algorithm == "grpo" else ppo
    started = time.perf_counter()
    backend.train(config=config, rows=[TOY, TOY], reward=HybridReward(config=config),
                  output_dir=root / f"{algorithm}-{seed}", hooks=hooks)
    seconds = time.perf_counter() - started
    rewards = [m["reward/math"] for m in hooks.metrics]
    return {"algorithm": algorithm, "seed": seed, "first5": float(np.mean(rewards[:5])),
            "last5": float(np.mean(rewards[-5:])), "seconds": seconds, "steps_s": steps / seconds,
            "completions_s": steps * 16 / seconds, "kl_last": hooks.metrics[-1]["kl"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lr-grpo", type=float, default=1e-2)
    parser.add_argument("--lr-ppo", type=float, default=3e-3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    print(f"{'algorithm':<6} {'seed':>4} {'reward first 5':>15} {'last 5':>7} {'time s':>7} {'steps/s':>8} "
          f"{'completions/s':>14} {'KL last':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for algorithm, lr in (("grpo", args.lr_grpo), ("ppo", args.lr_ppo)):
            for seed in args.seeds:
                r = run(algorithm, seed, args.steps, lr, Path(tmp))
                print(f"{r['algorithm']:<6} {r['seed']:>4} {r['first5']:>15.2f} {r['last5']:>7.2f} {r['seconds']:>7.1f} "
                      f"{r['steps_s']:>8.2f} {r['completions_s']:>14.1f} {r['kl_last']:>8.3f}", flush=True)


if __name__ == "__main__":
    main()
