#!/usr/bin/env python
"""Dynamic k against uniform k: how many human labels does the same set accuracy take?

    .venv/bin/python bench/active_labelling.py [--seeds 5] [--items 150]

Runs the real queue (annotation.services.queue: next, submit and calibration's after-submit hook,
where dynamic k lives) in process against a throwaway SQLite database (var/bench-active.sqlite3,
rebuilt each run), with simulated annotators who take turns asking for work until none is left:
6 honest (right 85% of the time), 2 careless (65%) and 1 position-biased (the left response 80% of
the time, else honest). Every item has a known true winner. Policies: uniform k = 3 and k = 5, and
dynamic k (k_min 2, at most 5 or 7) at several stop confidences. Per policy: human labels spent,
and set accuracy against the truth (the winner the platform's default aggregation, Dawid-Skene,
picks from the stored judgments; an item with no winner counts as wrong), with the accuracy
reached along the way (curve points every 10% of the uniform-5 budget). Mean and 95% t-interval
over seeds; writes JSON and a PNG chart to bench/results/.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB = ROOT / "var" / "bench-active.sqlite3"
os.environ["DATABASE_URL"] = f"sqlite:///{DB}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

DB.parent.mkdir(exist_ok=True)
DB.unlink(missing_ok=True)
django.setup()

import numpy as np  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from scipy import stats  # noqa: E402

from annotation.models import Item, Judgment, Role  # noqa: E402
from annotation.importing import ParsedItem, ParsedResponse  # noqa: E402
from annotation.services.imports import items_create  # noqa: E402
from annotation.services.judgments import JudgmentInput  # noqa: E402
from annotation.services.projects import membership_add, project_create  # noqa: E402
from annotation.services.queue import queue_next, queue_submit  # noqa: E402
from annotation.sides import to_shown  # noqa: E402
from calibration.services.dynamic_k import routing_update  # noqa: E402
from calibration.services.policy import policy_update  # noqa: E402
from annotation.services import routing  # noqa: E402
from rewards.aggregation import dawid_skene  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

RATERS = [("honest", 0.85)] * 6 + [("careless", 0.65)] * 2 + [("position", 0.85)]
POLICIES = [
    ("uniform k=3", {"overlap": 3}),
    ("uniform k=5", {"overlap": 5}),
    ("dynamic 2..5, stop 0.95", {"overlap": 5, "dynamic": (2, 0.95)}),
    ("dynamic 2..7, stop 0.93", {"overlap": 7, "dynamic": (2, 0.93)}),
    ("dynamic 2..7, stop 0.95", {"overlap": 7, "dynamic": (2, 0.95)}),
    ("dynamic 2..7, stop 0.97", {"overlap": 7, "dynamic": (2, 0.97)}),
    ("dynamic 2..9, stop 0.97", {"overlap": 9, "dynamic": (2, 0.97)}),
]
# Responses are bags of words; a hidden linear score decides which is better, so a reward model
# can learn it: the first 12 words count +1, the next 12 count -1, the rest nothing, plus noise.
VOCAB = [f"w{i}" for i in range(60)]
WEIGHTS = np.array([1.0] * 12 + [-1.0] * 12 + [0.0] * 36)
WORDS_PER_RESPONSE = 12


def response_pair(rng: random.Random) -> tuple[str, str, str]:
    """Two responses and the true winner ("a" or "b")."""
    texts, scores = [], []
    for _ in range(2):
        words = [rng.randrange(len(VOCAB)) for _ in range(WORDS_PER_RESPONSE)]
        texts.append(" ".join(VOCAB[w] for w in words))
        scores.append(WEIGHTS[words].sum() + rng.gauss(0, 0.5))
    return texts[0], texts[1], "a" if scores[0] > scores[1] else "b"


def features(a: str, b: str) -> np.ndarray:
    index = {w: i for i, w in enumerate(VOCAB)}
    x = np.zeros(len(VOCAB))
    for w in a.split():
        x[index[w]] += 1
    for w in b.split():
        x[index[w]] -= 1
    return x


def run(policy: dict, seed: int, n_items: int, curve_every: int, test_pairs) -> dict:
    rng = random.Random(seed)
    # The side each item is shown with is the queue's own draw (a system RNG); the bench fixes it
    # per seed so that policies differ only in what they do, not in which sides came up.
    routing._rng = random.Random(10_000 + seed)
    slug = f"al-{uuid.uuid4().hex[:8]}"
    project = project_create(slug=slug, name=slug, spec_text="# Bench", overlap=policy["overlap"],
                             min_rationale_chars=1)
    policy_update(project=project, changes={"hidden_rate": 0.0, "reask_rate": 0.0})
    if "dynamic" in policy:
        k_min, stop = policy["dynamic"]
        routing_update(project=project, changes={"dynamic_k": True, "k_min": k_min, "stop_confidence": stop})
    truth_rng = random.Random(1000 + seed)  # the same items and truths for every policy
    pairs = [response_pair(truth_rng) for _ in range(n_items)]
    batch = [ParsedItem(messages=[{"role": "user", "content": f"Question {i}?"}], domain="general",
                        responses=[ParsedResponse(text=a), ParsedResponse(text=b)])
             for i, (a, b, _t) in enumerate(pairs)]
    items = items_create(project=project, batch=batch)
    truth = {item.pk: t for item, (_a, _b, t) in zip(items, pairs)}
    texts = {item.pk: (a, b) for item, (a, b, _t) in zip(items, pairs)}
    User = get_user_model()
    people = []
    for k, (kind, accuracy) in enumerate(RATERS):
        user = User.objects.create(username=f"{slug}-{kind}-{k}")
        membership_add(project=project, user=user, role=Role.ANNOTATOR)
        people.append((user, kind, accuracy))
    labels, curve = 0, []
    busy = True
    while busy:
        busy = False
        for user, kind, accuracy in people:
            assignment = queue_next(project=project, annotator=user)
            if assignment is None:
                continue
            busy = True
            right = truth[assignment.item_id]
            if kind == "position" and rng.random() < 0.8:
                choice = assignment.shown_left
            else:
                choice = right if rng.random() < accuracy else ("b" if right == "a" else "a")
            shown = to_shown(choice, shown_left=assignment.shown_left)
            queue_submit(assignment_id=assignment.pk, annotator=user, client_token=uuid.uuid4(),
                         data=JudgmentInput(choice=shown, strength="clear", rationale="x"))
            labels += 1
            if labels % curve_every == 0:
                curve.append((labels, *measure(project, truth, texts, test_pairs)))
    curve.append((labels, *measure(project, truth, texts, test_pairs)))
    per_item = list(Item.objects.filter(project=project).values_list("judgment_count", flat=True))
    return {"labels": labels, "accuracy": curve[-1][1], "rm_accuracy": curve[-1][2], "curve": curve,
            "k_histogram": {int(k): per_item.count(k) for k in sorted(set(per_item))}}


def set_winners(project) -> dict:
    votes = list(Judgment.objects.filter(project=project).values_list("item_id", "annotator_id", "choice"))
    return dawid_skene(votes)[0] if votes else {}


def measure(project, truth: dict[int, str], texts: dict, test_pairs) -> tuple[float, float]:
    """Set accuracy against the truth (an item with no winner counts as wrong), and the held-out
    accuracy of a reward model trained on the set: a linear Bradley-Terry model on word counts
    (scikit-learn's logistic regression on the difference of the two responses' counts, each pair
    also mirrored), scored on pairs no one labelled."""
    winners = set_winners(project)
    set_accuracy = sum(1 for item, right in truth.items() if item in winners and winners[item].label == right) / len(truth)
    X, y = [], []
    for item, agg in winners.items():
        if agg.label not in ("a", "b"):
            continue
        a, b = texts[item]
        x = features(a, b)
        X += [x, -x]
        y += [int(agg.label == "a"), int(agg.label != "a")]
    if len(set(y)) < 2:
        return set_accuracy, 0.5
    model = LogisticRegression(C=1.0, max_iter=1000).fit(np.array(X), np.array(y))
    test_x, test_y = test_pairs
    return set_accuracy, float((model.predict(test_x) == test_y).mean())


def mean_ci(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return float(values[0]), 0.0
    return float(np.mean(values)), float(stats.t.isf(0.025, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))


def labels_to_reach(curve, target: float) -> float | None:
    """The fewest labels at which a run's set accuracy reached `target` (its curve points), or None."""
    for labels, accuracy, _rm in curve:
        if accuracy >= target - 1e-12:
            return labels
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--items", type=int, default=150)
    parser.add_argument("--test-pairs", type=int, default=400)
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    curve_every = max(1, options.items * 5 // 20)  # a curve point every 5% of uniform k=5's budget
    test_rng = random.Random(7)
    held_out = [response_pair(test_rng) for _ in range(options.test_pairs)]
    test_pairs = (np.array([features(a, b) for a, b, _t in held_out]), np.array([int(t == "a") for _a, _b, t in held_out]))
    results: dict[str, list[dict]] = {name: [] for name, _ in POLICIES}
    for seed in range(options.seeds):
        for name, policy in POLICIES:
            results[name].append(run(policy, seed, options.items, curve_every, test_pairs))
            r = results[name][-1]
            print(f"seed {seed} {name:>24}: {r['labels']:5d} labels, set accuracy {r['accuracy']:.3f}, "
                  f"RM held-out {r['rm_accuracy']:.3f}", flush=True)
    base = results["uniform k=5"]
    print(f"\n{options.seeds} seeds, {options.items} items, mean ± 95% t; paired differences against uniform k = 5 "
          f"on the same seed (same items, truths, sides and rater draws)\n")
    print("| policy | human labels | fewer than k=5 | set accuracy | Δ set accuracy | RM held-out | Δ RM | "
          "labels to reach k=5's set accuracy |")
    print("|---|---|---|---|---|---|---|---|")
    table = {}
    for name, _ in POLICIES:
        runs = results[name]
        labels = [r["labels"] for r in runs]
        saved = [1 - r["labels"] / b["labels"] for r, b in zip(runs, base)]
        acc = [r["accuracy"] for r in runs]
        d_acc = [r["accuracy"] - b["accuracy"] for r, b in zip(runs, base)]
        rm = [r["rm_accuracy"] for r in runs]
        d_rm = [r["rm_accuracy"] - b["rm_accuracy"] for r, b in zip(runs, base)]
        reach = [labels_to_reach(r["curve"], b["accuracy"]) for r, b in zip(runs, base)]
        reached = [1 - x / b["labels"] for x, b in zip(reach, base) if x is not None]
        row = {k: mean_ci(v) for k, v in (("labels", labels), ("saved", saved), ("accuracy", acc), ("d_accuracy", d_acc),
                                          ("rm", rm), ("d_rm", d_rm))}
        row["saved_at_equal_accuracy"] = mean_ci(reached) if len(reached) == len(runs) else None
        row["reached"] = f"{len(reached)}/{len(runs)}"
        table[name] = row
        eq = (f"{100 * row['saved_at_equal_accuracy'][0]:.1f}% ± {100 * row['saved_at_equal_accuracy'][1]:.1f} fewer"
              if row["saved_at_equal_accuracy"] else f"reached in {row['reached']} seeds")
        print(f"| {name} | {row['labels'][0]:.0f} ± {row['labels'][1]:.0f} | {100 * row['saved'][0]:.1f}% ± "
              f"{100 * row['saved'][1]:.1f} | {row['accuracy'][0]:.3f} ± {row['accuracy'][1]:.3f} | "
              f"{row['d_accuracy'][0]:+.3f} ± {row['d_accuracy'][1]:.3f} | {row['rm'][0]:.3f} ± {row['rm'][1]:.3f} | "
              f"{row['d_rm'][0]:+.3f} ± {row['d_rm'][1]:.3f} | {eq} |")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = ROOT / "bench" / "results" / f"active_labelling-{stamp}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"seeds": options.seeds, "items": options.items, "raters": RATERS, "table": table,
                               "runs": results}, indent=1))
    chart = out.with_suffix(".png")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
        budget = options.items * 7
        grid = np.arange(curve_every, budget + 1, curve_every)
        for index, (name, _) in enumerate(POLICIES):
            colour = f"C{index}"
            for panel, column, label in ((0, 1, "set accuracy against the truth (Dawid-Skene)"),
                                         (1, 2, "reward model accuracy on held-out pairs")):
                # Each run's curve held at its last value once its labels are spent, then mean and
                # 95% t-interval across seeds at each budget.
                values = []
                for r in results[name]:
                    points = np.array(r["curve"])
                    values.append([points[points[:, 0] <= x][-1, column] if (points[:, 0] <= x).any() else np.nan
                                   for x in grid])
                values = np.array(values)
                spent = np.mean([r["labels"] for r in results[name]])
                keep = grid <= spent + curve_every / 2
                mean = np.nanmean(values, axis=0)[keep]
                half = np.array([mean_ci([v for v in values[:, j] if not np.isnan(v)])[1]
                                 if np.sum(~np.isnan(values[:, j])) > 1 else 0.0 for j in np.where(keep)[0]])
                ax = axes[panel]
                ax.plot(grid[keep], mean, "-" if name.startswith("dynamic") else "--", color=colour, label=name)
                ax.fill_between(grid[keep], mean - half, mean + half, color=colour, alpha=0.12)
                ax.set_ylabel(label)
        for ax in axes:
            ax.set_xlabel("human labels spent")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8, loc="lower right")
        fig.suptitle(f"Dynamic k with informative-first ordering vs uniform k ({options.items} items, {options.seeds} "
                     f"seeds, 95% intervals)")
        fig.tight_layout()
        fig.savefig(chart, dpi=110)
        print(f"wrote {chart}")
    except ImportError:
        print("matplotlib is not installed: no chart (pip install matplotlib; only this bench draws)")
    print(f"wrote {out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
