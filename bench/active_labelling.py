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
from rewards.aggregation import dawid_skene  # noqa: E402

RATERS = [("honest", 0.85)] * 6 + [("careless", 0.65)] * 2 + [("position", 0.85)]
POLICIES = [
    ("uniform k=3", {"overlap": 3}),
    ("uniform k=5", {"overlap": 5}),
    ("dynamic 2..5, stop 0.90", {"overlap": 5, "dynamic": (2, 0.90)}),
    ("dynamic 2..5, stop 0.95", {"overlap": 5, "dynamic": (2, 0.95)}),
    ("dynamic 2..7, stop 0.90", {"overlap": 7, "dynamic": (2, 0.90)}),
    ("dynamic 2..7, stop 0.95", {"overlap": 7, "dynamic": (2, 0.95)}),
    ("dynamic 2..7, stop 0.98", {"overlap": 7, "dynamic": (2, 0.98)}),
]


def run(policy: dict, seed: int, n_items: int, curve_every: int) -> dict:
    rng = random.Random(seed)
    slug = f"al-{uuid.uuid4().hex[:8]}"
    project = project_create(slug=slug, name=slug, spec_text="# Bench", overlap=policy["overlap"],
                             min_rationale_chars=1)
    policy_update(project=project, changes={"hidden_rate": 0.0, "reask_rate": 0.0})
    if "dynamic" in policy:
        k_min, stop = policy["dynamic"]
        routing_update(project=project, changes={"dynamic_k": True, "k_min": k_min, "stop_confidence": stop})
    truth_rng = random.Random(1000 + seed)  # the same items and truths for every policy
    batch = [ParsedItem(messages=[{"role": "user", "content": f"Question {i}?"}], domain="general",
                        responses=[ParsedResponse(text=f"Answer one to {i}."), ParsedResponse(text=f"Answer two to {i}.")])
             for i in range(n_items)]
    items = items_create(project=project, batch=batch)
    truth = {item.pk: truth_rng.choice("ab") for item in items}
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
                curve.append((labels, set_accuracy(project, truth)))
    curve.append((labels, set_accuracy(project, truth)))
    per_item = list(Item.objects.filter(project=project).values_list("judgment_count", flat=True))
    return {"labels": labels, "accuracy": curve[-1][1], "curve": curve,
            "k_histogram": {int(k): per_item.count(k) for k in sorted(set(per_item))}}


def set_accuracy(project, truth: dict[int, str]) -> float:
    votes = list(Judgment.objects.filter(project=project).values_list("item_id", "annotator_id", "choice"))
    labels = dawid_skene(votes)[0] if votes else {}
    return sum(1 for item, right in truth.items() if item in labels and labels[item].label == right) / len(truth)


def mean_ci(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return float(values[0]), 0.0
    return float(np.mean(values)), float(stats.t.isf(0.025, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--items", type=int, default=150)
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    curve_every = max(1, options.items * 5 // 10)
    results: dict[str, list[dict]] = {name: [] for name, _ in POLICIES}
    for seed in range(options.seeds):
        for name, policy in POLICIES:
            results[name].append(run(policy, seed, options.items, curve_every))
            r = results[name][-1]
            print(f"seed {seed} {name:>24}: {r['labels']:5d} labels, set accuracy {r['accuracy']:.3f}", flush=True)
    base = [r["labels"] for r in results["uniform k=5"]]
    print(f"\n| policy | human labels | vs uniform k=5 | set accuracy | ({options.seeds} seeds, {options.items} items, "
          f"mean ± 95% t) |")
    print("|---|---|---|---|---|")
    table = {}
    for name, _ in POLICIES:
        labels = [r["labels"] for r in results[name]]
        saved = [1 - a / b for a, b in zip(labels, base)]
        acc = [r["accuracy"] for r in results[name]]
        (lm, lh), (sm, sh), (am, ah) = mean_ci(labels), mean_ci(saved), mean_ci(acc)
        table[name] = {"labels": [lm, lh], "saved": [sm, sh], "accuracy": [am, ah]}
        print(f"| {name} | {lm:.0f} ± {lh:.0f} | {100 * sm:+.1f}% ± {100 * sh:.1f} fewer | {am:.3f} ± {ah:.3f} | |")
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

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for index, (name, _) in enumerate(POLICIES):
            colour, marker = f"C{index}", "s" if name.startswith("uniform") else "o"
            points = np.array([p for r in results[name] for p in r["curve"]])
            ax.plot(points[:, 0], points[:, 1], ".", alpha=0.3, color=colour)
            finals = np.array([r["curve"][-1] for r in results[name]])
            ax.errorbar(finals[:, 0].mean(), finals[:, 1].mean(), xerr=mean_ci(list(finals[:, 0]))[1],
                        yerr=mean_ci(list(finals[:, 1]))[1], fmt=marker, markersize=8, color=colour, capsize=3,
                        label=name)
        ax.set_xlabel("human labels spent (small dots: along the way; large: at the end, 95% intervals)")
        ax.set_ylabel("set accuracy against the truth (Dawid-Skene)")
        ax.set_title(f"Dynamic k vs uniform k ({options.items} items, {options.seeds} seeds)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(chart, dpi=110)
        print(f"wrote {chart}")
    except ImportError:
        print("matplotlib is not installed: no chart (pip install matplotlib; only this bench draws)")
    print(f"wrote {out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
