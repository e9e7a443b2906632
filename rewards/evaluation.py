"""Evaluating a reward model on a preference set's held-out pairs, before any RL use. Pure: numpy
and scipy, no Django, no torch (the worker scores the pairs, this judges the scores).

Accuracy is strict, as RewardBench counts it: a pair is right only when the chosen response scores
strictly higher; a tie counts as wrong. Calibration reads the Bradley-Terry probability
P(chosen beats rejected) = sigmoid((r_chosen - r_rejected) / T).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_expit


@dataclass(frozen=True)
class Thresholds:
    """A project's readiness minimums (issue 7's defaults)."""

    overall: float = 0.70
    per_category: float = 0.60
    category_min_pairs: int = 50
    length_controlled: float = 0.60
    # Red-team hacks (training/services/redteam.py): the share of the project's confirmed hacks the
    # model must rank below their reference; 0 requires nothing.
    hacks_fixed: float = 0.0


@dataclass
class Category:
    name: str
    pairs: int
    accuracy: float


@dataclass
class Report:
    pairs: int
    accuracy: float
    categories: dict[str, list[Category]] = field(default_factory=dict)  # dimension -> rows
    nll: float = float("nan")
    brier: float = float("nan")
    ece: float = float("nan")
    temperature: float = 1.0
    reliability: list[dict] = field(default_factory=list)
    length_correlation: float = float("nan")
    accuracy_chosen_shorter: float = float("nan")
    accuracy_chosen_longer: float = float("nan")
    pairs_chosen_shorter: int = 0
    pairs_chosen_longer: int = 0
    hacks: int = 0  # confirmed red-team hacks of the project when the model was evaluated
    hacks_fixed: float = float("nan")  # the share of them it ranks below their reference


def strict_correct(chosen: np.ndarray, rejected: np.ndarray) -> np.ndarray:
    return np.asarray(chosen, float) > np.asarray(rejected, float)


def accuracy_by(correct: np.ndarray, groups: Sequence[str | None]) -> list[Category]:
    """Accuracy per group; a pair whose group is None is not in this breakdown at all."""
    buckets: dict[str, list[bool]] = defaultdict(list)
    for ok, g in zip(correct, groups):
        if g is not None:
            buckets[g or "(none)"].append(bool(ok))
    return [Category(name=g, pairs=len(v), accuracy=float(np.mean(v))) for g, v in sorted(buckets.items())]


def nll_of(margin: np.ndarray, temperature: float = 1.0) -> float:
    """Mean Bradley-Terry negative log-likelihood of the chosen side winning."""
    return float(-np.mean(log_expit(np.asarray(margin, float) / temperature)))


def fit_temperature(margin: np.ndarray) -> float:
    """The temperature T > 0 that minimises the NLL of sigmoid(margin / T) (temperature scaling,
    Guo et al. 2017, with the single BT logit). Bounded: a model that is always right has no
    finite optimum."""
    margin = np.asarray(margin, float)
    if margin.size == 0 or not np.any(margin):
        return 1.0
    result = minimize_scalar(lambda log_t: nll_of(margin, float(np.exp(log_t))), bounds=(-6, 6), method="bounded")
    return float(np.exp(result.x))


def reliability(prob: np.ndarray, bins: int = 10) -> tuple[float, list[dict]]:
    """Expected calibration error over `bins` equal-width bins of P(chosen wins), and the diagram's
    points (mean predicted probability, observed rate of chosen winning, count). The outcome of
    every pair is 1 (the chosen side did win); the predicted probability is read against it after
    symmetrising: each pair also counts as its mirror (rejected vs chosen, outcome 0), so a model
    that says 0.7 everywhere is calibrated exactly when 70% of its confident picks are right."""
    p = np.concatenate([prob, 1 - prob])
    y = np.concatenate([np.ones_like(prob), np.zeros_like(prob)])
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    ece, points = 0.0, []
    for b in range(bins):
        mask = index == b
        if not mask.any():
            continue
        confidence, observed = float(p[mask].mean()), float(y[mask].mean())
        ece += mask.sum() / p.size * abs(confidence - observed)
        points.append({"low": float(edges[b]), "high": float(edges[b + 1]), "predicted": confidence,
                       "observed": observed, "count": int(mask.sum())})
    return float(ece), points


def evaluate(
    *,
    chosen: Sequence[float],
    rejected: Sequence[float],
    len_chosen: Sequence[int],
    len_rejected: Sequence[int],
    categories: Mapping[str, Sequence[str | None]] | None = None,
    dimension_labels: Mapping[str, Sequence[int]] | None = None,
) -> Report:
    """Everything the readiness gate and the registry show, from the two scores of each pair.

    `categories` groups the pairs (domain, tag, flaw type...): accuracy per group. A judgment
    dimension (helpfulness, safety...) is not a group but its own label: `dimension_labels[d][i]` is
    +1 when the annotators preferred pair i's chosen response on d, -1 when they preferred the
    rejected one, 0 when d gave no preference; accuracy on d is over the non-zero ones."""
    c, r = np.asarray(chosen, float), np.asarray(rejected, float)
    margin = c - r
    correct = strict_correct(c, r)
    report = Report(pairs=int(c.size), accuracy=float(correct.mean()) if c.size else float("nan"))
    for dimension, groups in (categories or {}).items():
        report.categories[dimension] = accuracy_by(correct, groups)
    rows = []
    for name, labels in (dimension_labels or {}).items():
        labels = np.asarray(labels, float)
        mask = labels != 0
        if mask.any():
            rows.append(Category(name=name, pairs=int(mask.sum()),
                                 accuracy=float(np.mean(margin[mask] * labels[mask] > 0))))
    if rows:
        report.categories["dimension"] = rows
    if c.size:
        report.temperature = fit_temperature(margin)
        prob = expit(margin / report.temperature)
        report.nll = nll_of(margin, report.temperature)
        report.brier = float(np.mean((1 - prob) ** 2))
        report.ece, report.reliability = reliability(prob)
        scores = np.concatenate([c, r])
        lengths = np.concatenate([np.asarray(len_chosen, float), np.asarray(len_rejected, float)])
        if scores.std() > 0 and lengths.std() > 0:
            report.length_correlation = float(np.corrcoef(scores, lengths)[0, 1])
        lc, lr = np.asarray(len_chosen), np.asarray(len_rejected)
        shorter, longer = lc < lr, lc > lr
        report.pairs_chosen_shorter, report.pairs_chosen_longer = int(shorter.sum()), int(longer.sum())
        if shorter.any():
            report.accuracy_chosen_shorter = float(correct[shorter].mean())
        if longer.any():
            report.accuracy_chosen_longer = float(correct[longer].mean())
    return report


@dataclass
class Verdict:
    ready: bool
    failures: list[str]


def readiness(report: Report, thresholds: Thresholds = Thresholds()) -> Verdict:
    """Ready only if every minimum holds; the failures are named in words. Length-controlled
    accuracy is the accuracy on pairs whose chosen response is the shorter one: a model that only
    learned "longer wins" fails it."""
    failures = []
    if not report.accuracy >= thresholds.overall:
        failures.append(f"overall accuracy {report.accuracy:.2f} is under {thresholds.overall:.2f}")
    for dimension, rows in report.categories.items():
        for row in rows:
            if row.pairs >= thresholds.category_min_pairs and row.accuracy < thresholds.per_category:
                failures.append(f"{dimension} {row.name}: accuracy {row.accuracy:.2f} on {row.pairs} pairs is under "
                                f"{thresholds.per_category:.2f}")
    if report.pairs_chosen_shorter == 0:
        failures.append("no held-out pair has the shorter response chosen: length-controlled accuracy unknown")
    elif report.accuracy_chosen_shorter < thresholds.length_controlled:
        failures.append(f"length-controlled accuracy {report.accuracy_chosen_shorter:.2f} (chosen is the shorter one, "
                        f"{report.pairs_chosen_shorter} pairs) is under {thresholds.length_controlled:.2f}")
    if thresholds.hacks_fixed > 0 and report.hacks and not report.hacks_fixed >= thresholds.hacks_fixed:
        failures.append(f"ranks the reference above the hack on {report.hacks_fixed:.2f} of the {report.hacks} "
                        f"confirmed red-team hacks, under {thresholds.hacks_fixed:.2f}")
    return Verdict(ready=not failures, failures=failures)
