#!/usr/bin/env python
"""Does curation change the reward model? A simulated pool with planted biases labels pairs whose
true winner is known; each aggregation turns the pool's labels into a training set; the same
small reward model (the real MiniLM backbone, our training code, CPU) is trained on each and
judged on held-out pairs against the truth.

    .venv/bin/python bench/curation_effect.py [--seeds 3] [--epochs 2] [--per-fact 6]

Pairs: training/generators/synthetic.py's facts (the right answer is the true winner; filler
sentences on either side at random, so length carries no signal). Which side is A is random.
Pool per pair: 5 of 10 raters: 5 honest (right 85% of the time), 2 length-biased (the longer
answer when lengths differ by more than 30 characters, 85%), 2 position-biased (the left one,
80%), 1 spammer (random). Sets:
- raw majority: the plurality of the five (split votes dropped);
- Dawid-Skene: the platform's default;
- curated: bias-aware aggregation (rewards/bias_aware.py) after leaving out the judgments of the
  raters the named detectors flag (calibration/bias.py) where their bias applies.
Held out: whole facts, scored as chosen = the right answer; overall accuracy and length-controlled
(pairs where the right answer is the shorter). Mean and 95% t-interval over seeds. Writes JSON to
bench/results/.
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
from scipy import stats  # noqa: E402

from calibration import bias  # noqa: E402
from rewards.aggregation import dawid_skene, majority  # noqa: E402
from rewards.bias_aware import bias_aware_fit  # noqa: E402
from training.generators.synthetic import fact_pairs, split_by_fact  # noqa: E402

POOLS = {
    "mild": ["honest"] * 5 + ["length"] * 2 + ["position"] * 2 + ["spammer"],
    # Length bias common enough that the raw majority follows it on many pairs where the right
    # answer is the shorter: the classic way crowd labels teach a reward model "longer is better".
    "length-heavy": ["honest"] * 4 + ["length"] * 4 + ["position", "spammer"],
}
RATERS = POOLS["mild"]


def pool(train: list[dict], seed: int):
    """Per pair: texts as A/B, the truth, and five judgments."""
    rng = np.random.default_rng(seed)
    n = len(train)
    a_is_right = rng.random(n) < 0.5
    text_a = [p["chosen"] if r else p["rejected"] for p, r in zip(train, a_is_right)]
    text_b = [p["rejected"] if r else p["chosen"] for p, r in zip(train, a_is_right)]
    truth = np.where(a_is_right, bias.A, bias.B)
    who = np.argsort(rng.random((n, len(RATERS))), axis=1)[:, :5]
    item = np.repeat(np.arange(n), 5)
    annotator = who.reshape(-1)
    kind = np.array(RATERS)[annotator]
    a_left = rng.random(item.size) < 0.5
    gap = np.array([len(b) - len(a) for a, b in zip(text_a, text_b)])[item]
    t = truth[item]
    choice = np.where(rng.random(item.size) < 0.85, t, 1 - t)
    longer = np.where(gap > 30, bias.B, np.where(gap < -30, bias.A, -1))
    go = (kind == "length") & (longer >= 0) & (rng.random(item.size) < 0.85)
    choice[go] = longer[go]
    go = (kind == "position") & (rng.random(item.size) < 0.8)
    choice[go] = np.where(a_left, bias.A, bias.B)[go]
    spam = kind == "spammer"
    choice[spam] = rng.integers(0, 2, int(spam.sum()))
    return text_a, text_b, truth, item, annotator, choice, a_left


def aggregations(text_a, text_b, item, annotator, choice, a_left) -> dict[str, np.ndarray]:
    """Per pair: the winner each aggregation picks (A, B, or -1 for no winner)."""
    n = len(text_a)
    votes = [(int(i), int(a), "ab"[c]) for i, a, c in zip(item, annotator, choice)]
    out = {}
    for name, labels in (("raw majority", majority(votes)), ("Dawid-Skene", dawid_skene(votes)[0])):
        out[name] = np.array([{"a": bias.A, "b": bias.B}.get(labels[i].label, -1) if i in labels else -1 for i in range(n)])
    fa = [bias.text_features(t) for t in text_a]
    fb = [bias.text_features(t) for t in text_b]
    items = bias.Items(
        len_a=np.array([f.chars for f in fa], float), len_b=np.array([f.chars for f in fb], float),
        assert_a=np.array([f.assertiveness for f in fa]), assert_b=np.array([f.assertiveness for f in fb]),
        list_a=np.array([f.is_list for f in fa]), list_b=np.array([f.is_list for f in fb]),
        read_chars=np.array([f.chars for f in fa]) + np.array([f.chars for f in fb]) + 40,
        expert=np.full(n, bias.NO_EXPERT))
    judgments = bias.Judgments(item=item, annotator=annotator, choice=choice, a_left=a_left,
                               time_ms=np.full(item.size, 30_000))
    flags = [{f.kind for f in row["flags"]} for row in bias.detect(judgments, items, len(RATERS))]
    gap = (items.len_b - items.len_a)[item]
    keep = np.array([not ("position" in flags[a] or ("length" in flags[a] and abs(g) > 30))
                     for a, g in zip(annotator, gap)])
    cues = np.column_stack([np.where(a_left, -1, 1), np.where(gap > 30, 1, np.where(gap < -30, -1, 0))])
    fit = bias_aware_fit(item[keep], annotator[keep], (choice[keep] == bias.B).astype(float), cues[keep],
                         n_items=n, n_annotators=len(RATERS))
    out["curated (flags + bias-aware)"] = np.where(fit.posterior_b > 0.5, bias.B, np.where(fit.posterior_b < 0.5, bias.A, -1))
    out["_flagged"] = flags
    return out


def train_and_score(rows: list[dict], test: list[dict], epochs: float) -> dict:
    from rewards.evaluation import evaluate
    from training.backbones import minilm_dir
    from training.backends import reward_trl
    from training.config import RewardRunConfig

    config = RewardRunConfig(base_model=str(minilm_dir()), epochs=epochs, checkpoint_every=10**6)
    with tempfile.TemporaryDirectory() as tmp:
        outcome = reward_trl.train(rows=[{**r, "margin": 0.0} for r in rows], config=config, output_dir=tmp)
        scores = reward_trl.score(model_dir=outcome.model_dir, prompts=[p["prompt"] for p in test] * 2,
                                  responses=[p["chosen"] for p in test] + [p["rejected"] for p in test])
    report = evaluate(chosen=scores[:len(test)], rejected=scores[len(test):],
                      len_chosen=[len(p["chosen"]) for p in test], len_rejected=[len(p["rejected"]) for p in test],
                      categories={"domain": [p["domain"] for p in test]})
    return {"accuracy": report.accuracy, "length_controlled": report.accuracy_chosen_shorter, "train_pairs": len(rows)}


def interval(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return float(values[0]), 0.0
    return float(np.mean(values)), float(stats.t.isf(0.025, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--per-fact", type=int, default=6)
    parser.add_argument("--pool", choices=sorted(POOLS), default="mild", help="which raters label the pairs")
    options = parser.parse_args()
    global RATERS
    RATERS = POOLS[options.pool]
    pairs = fact_pairs(per_fact=options.per_fact, seed=0)
    results: dict[str, dict[str, list]] = {}
    label_accuracy: dict[str, list] = {}
    started = time.perf_counter()
    for seed in range(options.seeds):
        train, test = split_by_fact(pairs, test_fraction=0.2, seed=seed)
        text_a, text_b, truth, item, annotator, choice, a_left = pool(train, seed)
        chosen_by = aggregations(text_a, text_b, item, annotator, choice, a_left)
        flagged = chosen_by.pop("_flagged")
        print(f"seed {seed}: {len(train)} training pairs, {len(test)} held out; flags "
              f"{ {RATERS[a] + str(a): sorted(f) for a, f in enumerate(flagged) if f} }")
        for name, winner in chosen_by.items():
            rows = [{"prompt": p["prompt"], "chosen": (a if w == bias.A else b), "rejected": (b if w == bias.A else a)}
                    for p, a, b, w in zip(train, text_a, text_b, winner) if w >= 0]
            label_accuracy.setdefault(name, []).append(float(np.mean(winner == truth)))
            scored = train_and_score(rows, test, options.epochs)
            for key, value in scored.items():
                results.setdefault(name, {}).setdefault(key, []).append(value)
            print(f"  {name:>30}: labels right {label_accuracy[name][-1]:.3f}, RM held-out accuracy "
                  f"{scored['accuracy']:.3f}, length-controlled {scored['length_controlled']:.3f} "
                  f"({scored['train_pairs']} training pairs)")
    print(f"\n| set | labels right | RM held-out accuracy | length-controlled | ({options.seeds} seeds, mean ± 95% t) |")
    print("|---|---|---|---|---|")
    table = {}
    for name, metrics in results.items():
        la, lah = interval(label_accuracy[name])
        acc, acch = interval(metrics["accuracy"])
        lc, lch = interval(metrics["length_controlled"])
        table[name] = {"labels_right": [la, lah], "accuracy": [acc, acch], "length_controlled": [lc, lch]}
        print(f"| {name} | {la:.3f} ± {lah:.3f} | {acc:.3f} ± {acch:.3f} | {lc:.3f} ± {lch:.3f} | |")
    out = ROOT / "bench" / "results" / f"curation_effect-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "seeds": options.seeds, "epochs": options.epochs,
                               "raters": RATERS, "table": table, "runs": results, "labels_right": label_accuracy,
                               "seconds": time.perf_counter() - started}, indent=1))
    print(f"\nwrote {out.relative_to(ROOT)} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
