"""Reward-model evaluation numbers (issue 7, pure part), checked against scikit-learn and scipy;
no database."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import pearsonr
from sklearn.metrics import brier_score_loss, log_loss

from rewards.evaluation import Thresholds, evaluate, fit_temperature, nll_of, readiness, reliability


def scored(seed: int = 0, n: int = 2000, skill: float = 1.5):
    rng = np.random.default_rng(seed)
    chosen = rng.normal(skill, 1.0, n)
    rejected = rng.normal(0.0, 1.0, n)
    len_c, len_r = rng.integers(50, 500, n), rng.integers(50, 500, n)
    return chosen, rejected, len_c, len_r


def test_strict_accuracy_counts_ties_as_wrong_and_per_category():
    report = evaluate(chosen=[1, 2, 3, 0], rejected=[0, 2, 1, 5], len_chosen=[1, 1, 1, 1], len_rejected=[2, 2, 2, 2],
                      categories={"domain": ["a", "a", "b", "b"]})
    assert report.accuracy == 0.5  # the tie (2 vs 2) is wrong
    assert [(c.name, c.pairs, c.accuracy) for c in report.categories["domain"]] == [("a", 2, 0.5), ("b", 2, 0.5)]


def test_nll_and_brier_equal_scikit_learn_at_the_fitted_temperature():
    chosen, rejected, len_c, len_r = scored()
    report = evaluate(chosen=chosen, rejected=rejected, len_chosen=len_c, len_rejected=len_r)
    prob = expit((chosen - rejected) / report.temperature)
    # Each pair as its two mirrored events (chosen wins: 1 with p; rejected wins: 0 with 1 - p).
    y = np.r_[np.ones_like(prob), np.zeros_like(prob)]
    p = np.r_[prob, 1 - prob]
    assert report.nll == pytest.approx(log_loss(y, p), rel=1e-9)
    assert report.brier == pytest.approx(brier_score_loss(y, p), rel=1e-9)
    # The fitted temperature is the NLL's minimum: nudging it either way only makes it worse.
    t = report.temperature
    assert nll_of(chosen - rejected, t) <= min(nll_of(chosen - rejected, t * 1.01), nll_of(chosen - rejected, t / 1.01))


def test_temperature_recovers_a_known_scale():
    # Outcomes drawn from sigmoid(z / 2.5): the model's margins z are over-confident by 2.5.
    rng = np.random.default_rng(1)
    z = rng.normal(0, 4, 20000)
    wins = rng.random(z.size) < expit(z / 2.5)
    margin = np.where(wins, z, -z)  # the chosen side is whichever won
    assert fit_temperature(margin) == pytest.approx(2.5, rel=0.05)


def test_reliability_by_hand():
    # Two pairs at p = 0.9 and one at 0.6: mirrored, bins hold (0.9 x2, obs 1), (0.1 x2, obs 0),
    # (0.6, obs 1), (0.4, obs 0) -> ECE = (2*0.1 + 2*0.1 + 0.4 + 0.4) / 6 = 0.2.
    ece, points = reliability(np.array([0.9, 0.9, 0.6]))
    assert ece == pytest.approx(0.2)
    assert sum(pt["count"] for pt in points) == 6


def test_length_bias_numbers():
    chosen, rejected, len_c, len_r = scored(seed=2)
    # A model that adds length to its score: correlated with length, worse where chosen is shorter.
    c = chosen + len_c / 100
    r = rejected + len_r / 100
    report = evaluate(chosen=c, rejected=r, len_chosen=len_c, len_rejected=len_r)
    expected = pearsonr(np.r_[c, r], np.r_[len_c, len_r]).statistic
    assert report.length_correlation == pytest.approx(expected, rel=1e-9)
    assert report.accuracy_chosen_shorter < report.accuracy_chosen_longer
    assert report.pairs_chosen_shorter + report.pairs_chosen_longer <= len(c)


def test_readiness_names_every_failing_minimum():
    chosen, rejected, len_c, len_r = scored(seed=3, skill=2.5)
    domains = np.where(np.arange(len(chosen)) < 100, "safety", "general")
    chosen = chosen.copy()
    chosen[:100] = rejected[:100] - 1  # the model is always wrong on safety
    report = evaluate(chosen=chosen, rejected=rejected, len_chosen=len_c, len_rejected=len_r,
                      categories={"domain": list(domains)})
    verdict = readiness(report, Thresholds())
    assert not verdict.ready and verdict.failures == [
        "domain safety: accuracy 0.00 on 100 pairs is under 0.60"]
    good = evaluate(chosen=chosen[100:], rejected=rejected[100:], len_chosen=len_c[100:], len_rejected=len_r[100:],
                    categories={"domain": list(domains[100:])})
    assert readiness(good).ready
    only_longer = evaluate(chosen=[2, 2], rejected=[1, 1], len_chosen=[9, 9], len_rejected=[1, 1])
    assert "length-controlled accuracy unknown" in readiness(only_longer).failures[0]


def test_dimension_accuracy_reads_each_dimension_label_and_skips_pairs_without_one():
    # Pair 0: right overall, and on safety the annotators preferred the rejected one (the model is
    # wrong there). Pair 1: wrong overall (tie), no safety preference. Pair 2: right, safety agrees.
    report = evaluate(chosen=[2.0, 1.0, 3.0], rejected=[1.0, 1.0, 0.0], len_chosen=[5, 5, 5], len_rejected=[6, 6, 6],
                      categories={"flaw_type": [None, "unsafe", None]},
                      dimension_labels={"safety": [-1, 0, 1], "tone": [0, 0, 0]})
    dims = {row.name: (row.pairs, row.accuracy) for row in report.categories["dimension"]}
    assert dims == {"safety": (2, 0.5)}  # tone has no labelled pair: no row
    assert [(c.name, c.pairs, c.accuracy) for c in report.categories["flaw_type"]] == [("unsafe", 1, 0.0)]
