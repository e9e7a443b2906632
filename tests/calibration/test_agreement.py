"""Agreement statistics against published values and well-kept libraries (krippendorff,
statsmodels, scikit-learn, crowd-kit), plus properties any agreement coefficient must have."""
from __future__ import annotations

import krippendorff
import numpy as np
import pandas as pd
import pytest
import statsmodels.stats.inter_rater as inter_rater
from crowdkit.metrics import data as crowdkit_data
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from calibration import agreement as ag


def _long(data: np.ndarray):
    """(raters x units) with NaN for missing -> long-form unit, rater, value arrays."""
    raters, units = np.nonzero(~np.isnan(data))
    return units, raters, data[raters, units].astype(int)


def _generated(seed: int, raters: int = 8, units: int = 150, values: int = 4, missing: float = 0.35,
               accuracy: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, values, units)
    data = rng.integers(0, values, (raters, units)).astype(float)
    agree = rng.random((raters, units)) < accuracy
    data[agree] = np.broadcast_to(truth, (raters, units))[agree]
    data[rng.random((raters, units)) < missing] = np.nan
    return data


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: four observers,
# twelve units, values 1-5 with missing data. Published α: nominal 0.743, ordinal 0.815.
KRIPPENDORFF_2011 = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
    [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
])


def test_krippendorff_alpha_matches_the_published_worked_example():
    units, _, values = _long(KRIPPENDORFF_2011)
    counts = ag.value_counts(units, values - 1, 5)
    assert ag.krippendorff_alpha(counts, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert ag.krippendorff_alpha(counts, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert ag.krippendorff_alpha(counts, "interval") == pytest.approx(0.849, abs=5e-4)


# Fleiss (1971), Table 1 as reproduced on Wikipedia's "Fleiss' kappa": 10 subjects, 14 raters,
# 5 categories; κ = 0.210, P̄ = 0.378.
FLEISS_1971 = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])


def test_fleiss_kappa_matches_the_published_table():
    assert ag.fleiss_kappa(FLEISS_1971) == pytest.approx(0.210, abs=5e-4)
    assert ag.percent_agreement(FLEISS_1971) == pytest.approx(0.378, abs=5e-4)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_equals_the_krippendorff_package_on_generated_data_with_missing_values(seed, level):
    data = _generated(seed)
    units, _, values = _long(data)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level, value_domain=[0, 1, 2, 3])
    assert ag.krippendorff_alpha(ag.value_counts(units, values, 4), level) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_alpha_equals_crowd_kit(seed):
    data = _generated(seed)
    units, raters, values = _long(data)
    frame = pd.DataFrame({"task": units, "worker": raters, "label": values})
    expected = crowdkit_data.alpha_krippendorff(frame)
    assert ag.krippendorff_alpha(ag.value_counts(units, values, 4), "nominal") == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_kappa_equals_statsmodels_when_every_unit_has_the_same_number_of_ratings(seed):
    data = _generated(seed, missing=0.0)
    units, _, values = _long(data)
    counts = ag.value_counts(units, values, 4)
    assert ag.fleiss_kappa(counts) == pytest.approx(inter_rater.fleiss_kappa(counts, method="fleiss"), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_cohen_kappa_matrix_equals_scikit_learn_and_its_interval_equals_statsmodels(seed):
    data = _generated(seed, raters=6, units=120)
    units, raters, values = _long(data)
    result = ag.cohen_kappa_matrix(units, raters, values, n_raters=6, n_values=4)
    for a in range(6):
        for b in range(6):
            if a == b:
                assert np.isnan(result.kappa[a, b])
                continue
            shared = ~np.isnan(data[a]) & ~np.isnan(data[b])
            assert result.n[a, b] == shared.sum()
            expected = cohen_kappa_score(data[a, shared], data[b, shared])
            assert result.kappa[a, b] == pytest.approx(expected, abs=1e-9)
            table = np.zeros((4, 4))
            np.add.at(table, (data[a, shared].astype(int), data[b, shared].astype(int)), 1)
            sm = inter_rater.cohens_kappa(table)
            assert (result.low[a, b], result.high[a, b]) == pytest.approx((sm.kappa_low, sm.kappa_upp), abs=1e-9)


def test_cohen_kappa_is_withheld_below_the_minimum_overlap():
    units = np.array([0, 1, 2, 0, 1, 2])
    raters = np.array([0, 0, 0, 1, 1, 1])
    values = np.array([0, 1, 0, 0, 1, 1])
    result = ag.cohen_kappa_matrix(units, raters, values, 2, 2, min_shared=5)
    assert result.n[0, 1] == 3 and np.isnan(result.kappa[0, 1])


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_more_units():
    small = _generated(1, units=60)
    large = _generated(1, units=1500)
    widths = []
    for data in (small, large):
        units, _, values = _long(data)
        counts = ag.value_counts(units, values, 4)
        summary = ag.agreement_summary(counts, counts, samples=300)
        for est in (summary.percent, summary.fleiss, summary.alpha_nominal, summary.alpha_ordinal):
            assert est.low <= est.value <= est.high
        widths.append(summary.alpha_nominal.high - summary.alpha_nominal.low)
    assert widths[1] < widths[0] / 2


def test_bootstrap_interval_covers_the_true_alpha_about_95_percent_of_the_time():
    # A population alpha from one huge sample, then many small samples: coverage near 95%.
    population = _generated(99, raters=6, units=60000, missing=0.3)
    units, _, values = _long(population)
    truth = ag.krippendorff_alpha(ag.value_counts(units, values, 4))
    covered = 0
    trials = 60
    for seed in range(trials):
        data = _generated(1000 + seed, raters=6, units=200, missing=0.3)
        units, _, values = _long(data)
        est = ag.agreement_summary(ag.value_counts(units, values, 4), samples=300, seed=seed).alpha_nominal
        covered += est.low <= truth <= est.high
    assert 0.85 <= covered / trials <= 1.0


ratings = st.lists(st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=3, max_size=3), min_size=4, max_size=25)


def _matrix(rows: list[list]) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float).T


@settings(max_examples=60, deadline=None)
@given(ratings)
def test_swapping_annotator_names_changes_nothing(rows):
    data = _matrix(rows)
    units, raters, values = _long(data)
    rename = np.array([2, 0, 1])  # rater r is now called rename[r]
    before = ag.cohen_kappa_matrix(units, raters, values, 3, 4, min_shared=1)
    after = ag.cohen_kappa_matrix(units, rename[raters], values, 3, 4, min_shared=1)
    np.testing.assert_allclose(before.kappa, after.kappa[np.ix_(rename, rename)], equal_nan=True)
    np.testing.assert_array_equal(before.n, after.n[np.ix_(rename, rename)])
    # The pooled statistics, through the oracle too: reordering the raters' rows changes nothing.
    shuffled = data[np.argsort(rename)]
    if (~np.isnan(data)).sum(axis=0).max() >= 2 and len(np.unique(values)) > 1:
        expected = krippendorff.alpha(reliability_data=shuffled, level_of_measurement="nominal", value_domain=[0, 1, 2, 3])
        ours = ag.krippendorff_alpha(ag.value_counts(units, values, 4))
        assert (np.isnan(expected) and np.isnan(ours)) or ours == pytest.approx(expected)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=2, max_size=30), st.integers(2, 6))
def test_identical_ratings_give_perfect_agreement(values, raters):
    if len(set(values)) < 2:
        values = values + [(values[0] + 1) % 4]
    data = np.tile(np.array(values, dtype=float), (raters, 1))
    units, _, vals = _long(data)
    counts = ag.value_counts(units, vals, 4)
    assert ag.krippendorff_alpha(counts, "nominal") == pytest.approx(1.0)
    assert ag.krippendorff_alpha(counts, "ordinal") == pytest.approx(1.0)
    assert ag.fleiss_kappa(counts) == pytest.approx(1.0)
    assert ag.percent_agreement(counts) == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(ratings)
def test_alpha_is_symmetric_in_the_value_labels_when_nominal(rows):
    data = _matrix(rows)
    units, _, values = _long(data)
    a = ag.krippendorff_alpha(ag.value_counts(units, values, 4), "nominal")
    b = ag.krippendorff_alpha(ag.value_counts(units, (values + 1) % 4, 4), "nominal")
    assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b)
