#!/usr/bin/env python
"""Planted-bias pools: do the named detectors flag each planted rater for its own bias and no honest
one, and how often does each aggregation find the true winner? Pure numpy/scipy, no database.

    .venv/bin/python bench/bias_pools.py [--seeds 10]

Pools (calibration/generators/simulation.py), 600 items, 7 judgments each, 16 raters: 6 experts,
2 noisy, 1 length-, 1 position-, 3 assertiveness-, 1 formatting-biased, 1 too fast, 1 spammer.
Two phrasings: the simulator's own templates, and templates written for this bench that are in no
lexicon test (multi-word boosters with a hedge word inside, "not entirely sure", ...) with the
assertive raters following the tone the text was *written* in, so the detector has to read the
phrasing (as on a pool we did not make). Per planted kind: raters flagged for that kind / planted;
precision and recall over all flags (a flag on an honest rater, or of the wrong kind, is a false
one; the spammer should raise none of the five kinds). Aggregations: majority, Dawid-Skene (the
platform default, ties and both-bad included), Dawid-Skene on the A/B votes, bias-aware.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from calibration import bias  # noqa: E402
from calibration.generators import simulation as sm  # noqa: E402
from rewards.aggregation import dawid_skene, majority  # noqa: E402
from rewards.bias_aware import bias_aware_fit  # noqa: E402

POOL = (["expert"] * 6 + ["noisy"] * 2 + ["length", "position"] + ["assertive"] * 3
        + ["formatting", "fast", "spammer"])
UNSEEN = (
    ("I'm not entirely sure, but {s}", "It could be that {s}", "As far as I can tell, {s}",
     "I would guess that {s}", "If I remember correctly, {s}", "{s} That said, I may be wrong."),
    ("Without any doubt, {s}", "Make no mistake: {s}", "{s} There is no question about it.",
     "It is beyond dispute that {s}", "Rest assured, {s}", "{s} This is simply a fact."),
)


def items_of(s: sm.Simulation) -> bias.Items:
    fa = [bias.text_features(t) for t in s.text_a]
    fb = [bias.text_features(t) for t in s.text_b]
    read = np.array([len(p) for p in s.prompts]) + np.array([f.chars for f in fa]) + np.array([f.chars for f in fb])
    return bias.Items(
        len_a=np.array([f.chars for f in fa], dtype=float), len_b=np.array([f.chars for f in fb], dtype=float),
        assert_a=np.array([f.assertiveness for f in fa]), assert_b=np.array([f.assertiveness for f in fb]),
        list_a=np.array([f.is_list for f in fa]), list_b=np.array([f.is_list for f in fb]),
        read_chars=read, expert=np.where(s.is_anchor, s.truth, -1),
    )


def cues_of(s: sm.Simulation, items: bias.Items) -> np.ndarray:
    gap = (items.len_b - items.len_a)[s.item]
    assertive = (items.assert_b - items.assert_a)[s.item]
    lists = (items.list_b.astype(int) - items.list_a.astype(int))[s.item]
    return np.column_stack([np.where(s.a_left, -1, 1), np.where(gap > 30, 1, np.where(gap < -30, -1, 0)),
                            np.where(assertive >= 1, 1, np.where(assertive <= -1, -1, 0)), lists])


def one_pool(seed: int, unseen: bool) -> dict:
    s = sm.simulate(kinds=POOL, n_items=600, per_item=7, seed=seed, phrasing=UNSEEN if unseen else None,
                    plant_by_written_tone=unseen)
    items = items_of(s)
    judgments = bias.Judgments(item=s.item, annotator=s.annotator, choice=s.choice, a_left=s.a_left, time_ms=s.time_ms)
    detected = bias.detect(judgments, items, len(POOL))
    right, wrong, per_kind, false = 0, 0, Counter(), Counter()
    for kind, row in zip(POOL, detected):
        kinds = {f.kind for f in row["flags"]}
        expected = sm.EXPECTED_FLAG.get(kind)
        if expected in kinds:
            right += 1
            per_kind[kind] += 1
        wrong += len(kinds - {expected})
        false.update(f"{kind} rater flagged for {k}" for k in kinds - {expected})
    votes = [(int(i), int(a), "abtx"[c]) for i, a, c in zip(s.item, s.annotator, s.choice)]
    decisive = s.choice <= 1
    n_items = len(s.prompts)

    def accuracy(labels) -> float:
        return float(np.mean([labels[i].label == "ab"[s.truth[i]] if i in labels else 0.5 for i in range(n_items)]))

    fit = bias_aware_fit(s.item[decisive], s.annotator[decisive], (s.choice[decisive] == 1).astype(float),
                         cues_of(s, items)[decisive], n_items=n_items, n_annotators=len(POOL))
    return {
        "right": right, "wrong": wrong, "per_kind": per_kind, "false": false,
        "majority": accuracy(majority(votes)), "dawid_skene": accuracy(dawid_skene(votes)[0]),
        "dawid_skene_ab": accuracy(dawid_skene([v for v, d in zip(votes, decisive) if d])[0]),
        "bias_aware": float(np.mean((fit.posterior_b > 0.5) == (s.truth == 1))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    planted = Counter(k for k in POOL if k in sm.EXPECTED_FLAG)
    for unseen in (False, True):
        runs = [one_pool(seed, unseen) for seed in range(args.seeds)]
        right = sum(r["right"] for r in runs)
        wrong = sum(r["wrong"] for r in runs)
        total = sum(planted.values()) * len(runs)
        print(f"\n## {'unseen phrasing, planted by written tone' if unseen else 'the simulator phrasing'}"
              f" ({len(runs)} pools)\n")
        print("| planted kind | raters | flagged for it |")
        print("|---|---|---|")
        for kind, n in planted.items():
            got = sum(r["per_kind"][kind] for r in runs)
            print(f"| {kind} | {n * len(runs)} | {got} ({got / (n * len(runs)):.2f}) |")
        false = sum((r["false"] for r in runs), Counter())
        print(f"\nprecision {right / max(right + wrong, 1):.3f} ({wrong} false flags: "
              f"{', '.join(f'{n} {what}' for what, n in false.most_common()) or 'none'}), recall {right / total:.3f}\n")
        print("| aggregation | truth accuracy (mean, min-max) |")
        print("|---|---|")
        for name in ("majority", "dawid_skene", "dawid_skene_ab", "bias_aware"):
            values = np.array([r[name] for r in runs])
            print(f"| {name} | {values.mean():.4f} ({values.min():.4f}-{values.max():.4f}) |")


if __name__ == "__main__":
    main()
