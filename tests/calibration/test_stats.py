"""Calibration statistics against references: statsmodels and Newcombe (1998) for the Wilson
interval, a sequence computed by hand for the Bernoulli CUSUM."""
from __future__ import annotations

import math

import pytest
from statsmodels.stats.proportion import proportion_confint

from calibration.stats import CusumParams, cusum_step, cusum_trace, rolling_accuracy, wilson_interval


@pytest.mark.parametrize("k, n", [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (17, 20), (81, 263), (1, 1000), (499, 1000)])
@pytest.mark.parametrize("confidence", [0.90, 0.95, 0.99])
def test_wilson_interval_matches_statsmodels(k, n, confidence):
    low, high = wilson_interval(k, n, confidence=confidence)
    ref_low, ref_high = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    assert low == pytest.approx(ref_low, abs=1e-12)
    assert high == pytest.approx(ref_high, abs=1e-12)


def test_wilson_interval_matches_newcombe_1998_published_examples():
    # Newcombe, Statistics in Medicine 17:857-872, Table I, method 3 (Wilson score, no correction).
    assert [round(x, 4) for x in wilson_interval(81, 263)] == [0.2553, 0.3662]
    assert [round(x, 4) for x in wilson_interval(15, 148)] == [0.0624, 0.1605]
    assert [round(x, 4) for x in wilson_interval(0, 20)] == [0.0, 0.1611]
    assert [round(x, 4) for x in wilson_interval(1, 29)] == [0.0061, 0.1718]


def test_wilson_interval_of_nothing_is_everything_and_bad_counts_are_refused():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_cusum_weights_are_the_log_likelihood_ratios():
    params = CusumParams(p0=0.1, p1=0.3, h=2.0)
    assert params.error_weight == pytest.approx(math.log(3))
    assert params.correct_weight == pytest.approx(math.log(0.7 / 0.9))


def test_cusum_follows_a_sequence_computed_by_hand():
    # p0 = 0.1, p1 = 0.3: an error adds ln 3 = 1.098612, a correct answer adds ln(7/9) = -0.251314.
    params = CusumParams(p0=0.1, p1=0.3, h=2.5)
    errors = [False, True, False, True, True, False, False]
    expected = [
        0.0,        # max(0, 0 - 0.251314)
        1.098612,   # 0 + 1.098612
        0.847298,   # 1.098612 - 0.251314
        1.945910,   # + 1.098612
        3.044522,   # + 1.098612  -> alarm (>= 2.5) at index 4
        2.793208,
        2.541894,
    ]
    trace = cusum_trace(errors, params)
    assert trace.values == pytest.approx(expected, abs=1e-6)
    assert trace.alarm_at == 4
    assert cusum_step(0.0, False, params) == 0.0  # floored at zero


def test_cusum_parameters_are_checked():
    with pytest.raises(ValueError):
        CusumParams(p0=0.3, p1=0.1, h=1)
    with pytest.raises(ValueError):
        CusumParams(p0=0.1, p1=0.3, h=0)


def test_rolling_accuracy_uses_the_last_window_outcomes():
    assert rolling_accuracy([True, False, True, True, False], 2) == [1.0, 0.5, 0.5, 1.0, 0.5]
    assert rolling_accuracy([], 3) == []
