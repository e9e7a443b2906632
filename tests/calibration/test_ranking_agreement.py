"""Ranking agreement (Kendall's tau-b and W) against scipy as the oracle, known values, a hand-worked
example and a relabelling property. No database."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from calibration.ranking_agreement import (
    RankingAgreement,
    kendall_tau_b,
    kendall_tau_b_many,
    kendall_w,
    ranking_agreement,
)


def _tied_ranks(rng: np.random.Generator, n: int) -> np.ndarray:
    """n ranks drawn from 1..k, k <= n, so ties are common; 1 in 20 rows is all tied (k = 1)."""
    k = 1 if rng.random() < 0.05 else int(rng.integers(2, n + 1))
    return rng.integers(1, k + 1, n)


def _same(a: float, b: float, tol: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def test_tau_b_matches_scipy_on_random_tied_rankings():
    rng = np.random.default_rng(20240611)
    undefined = 0
    for _ in range(500):
        n = int(rng.integers(3, 9))
        x, y = _tied_ranks(rng, n), _tied_ranks(rng, n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns on constant input
            expected = stats.kendalltau(x, y).statistic
        got = kendall_tau_b(x.tolist(), y.tolist())
        assert _same(got, expected, 1e-12), (x, y, got, expected)
        undefined += math.isnan(expected)
    assert 0 < undefined < 150  # the generator did reach the constant case, but not mostly


def test_tau_b_is_nan_on_constant_input():
    assert math.isnan(kendall_tau_b([2, 2, 2, 2], [1, 2, 3, 4]))
    assert math.isnan(kendall_tau_b([1, 2, 3, 4], [1, 1, 1, 1]))
    assert math.isnan(kendall_tau_b([1, 1, 1], [3, 3, 3]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(stats.kendalltau([2, 2, 2, 2], [1, 2, 3, 4]).statistic)


def test_tau_b_many_equals_scalar_row_by_row():
    rng = np.random.default_rng(7)
    for n in range(2, 9):
        x = np.array([_tied_ranks(rng, n) for _ in range(200)])
        y = np.array([_tied_ranks(rng, n) for _ in range(200)])
        many = kendall_tau_b_many(x, y)
        assert many.shape == (200,)
        for row, value in enumerate(many):
            assert _same(float(value), kendall_tau_b(x[row], y[row]), 0.0)


def test_tau_b_many_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        kendall_tau_b_many(np.ones((3, 4)), np.ones((3, 5)))


def test_w_matches_friedman_over_m_n_minus_1():
    rng = np.random.default_rng(31337)
    checked = skipped = 0
    for _ in range(300):
        m, n = int(rng.integers(2, 8)), int(rng.integers(3, 9))
        ranks = np.array([_tied_ranks(rng, n) for _ in range(m)])
        if all(len(set(row)) == 1 for row in ranks.tolist()):
            skipped += 1  # Friedman's tie correction is 0: the statistic does not exist
            assert math.isnan(kendall_w(ranks))
            continue
        # One argument per object (column), each holding that object's ranks over the raters.
        expected = stats.friedmanchisquare(*ranks.T).statistic / (m * (n - 1))
        assert kendall_w(ranks) == pytest.approx(expected, abs=1e-10), ranks
        checked += 1
    assert checked > 250


def test_w_is_nan_when_undefined():
    assert math.isnan(kendall_w(np.array([[1, 2, 3]])))  # one rater
    assert math.isnan(kendall_w(np.array([[1], [1]])))  # one object
    assert math.isnan(kendall_w(np.array([[1, 1, 1], [2, 2, 2]])))  # everything tied


def test_perfect_and_reversed_agreement():
    assert kendall_w(np.array([[1, 2, 3, 4]] * 5)) == pytest.approx(1.0)
    assert kendall_w(np.array([[1, 1, 2, 3]] * 3)) == pytest.approx(1.0)  # identical ties too
    assert kendall_tau_b([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == pytest.approx(1.0)
    assert kendall_tau_b([1, 1, 2, 3], [1, 1, 2, 3]) == pytest.approx(1.0)
    assert kendall_tau_b([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    # Two raters in exact opposition: the column sums are all equal, so S = 0.
    assert kendall_w(np.array([[1, 2, 3, 4], [4, 3, 2, 1]])) == pytest.approx(0.0)


def test_w_for_two_untied_raters_is_half_one_plus_spearman():
    rng = np.random.default_rng(5)
    for _ in range(100):
        n = int(rng.integers(3, 9))
        a, b = rng.permutation(n) + 1, rng.permutation(n) + 1
        rho = stats.spearmanr(a, b).statistic
        assert kendall_w(np.array([a, b])) == pytest.approx((1 + rho) / 2, abs=1e-12)


HAND_MADE = [
    # i1: three raters over r1..r3; cat ties everything.
    ("i1", "ann", {"r1": 1, "r2": 2, "r3": 3}),
    ("i1", "bob", {"r1": 1, "r2": 3, "r3": 2}),
    ("i1", "cat", {"r1": 2, "r2": 2, "r3": 2}),
    # i2: two raters, one tie each.
    ("i2", "ann", {"a": 1, "b": 2, "c": 2}),
    ("i2", "cat", {"a": 1, "b": 1, "c": 2}),
    # i3: a single ranking: no agreement to measure.
    ("i3", "bob", {"x": 1, "y": 2}),
]


def test_ranking_agreement_hand_computed():
    result = ranking_agreement(HAND_MADE)
    assert isinstance(result, RankingAgreement)
    assert result.items == 2  # i1, i2 (i3 has one ranking)
    assert result.rankings == 6
    # W(i1): mid-ranks ann [1,2,3], bob [1,3,2], cat [2,2,2]; column sums R = [4,7,7], mean
    #   m(n+1)/2 = 6, S = 4+1+1 = 6; ties: cat's one group of 3 -> 27-3 = 24.
    #   W = 12*6 / (9*(27-3) - 3*24) = 72 / 144 = 0.5.
    # W(i2): mid-ranks ann [1,2.5,2.5], cat [1.5,1.5,3]; R = [2.5,4,5.5], mean 4, S = 4.5;
    #   ties 6 + 6 = 12. W = 12*4.5 / (4*24 - 2*12) = 54 / 72 = 0.75.
    assert result.per_item == [
        {"item": "i1", "raters": 3, "w": pytest.approx(0.5)},
        {"item": "i2", "raters": 2, "w": pytest.approx(0.75)},
    ]
    assert result.mean_w == pytest.approx(0.625)
    assert result.median_w == pytest.approx(0.625)
    # Pairs: i1 ann-bob: (r1,r2) and (r1,r3) concordant, (r2,r3) discordant, no ties -> 1/3.
    #   i1 ann-cat and bob-cat: cat is constant -> undefined (2 pairs).
    #   i2 ann-cat: (a,b) tied in cat, (a,c) concordant, (b,c) tied in ann; n0 = 3, one tie in
    #   each -> 1 / sqrt(2*2) = 0.5.
    assert result.pairs == 2
    assert result.undefined_pairs == 2
    assert result.mean_tau_b == pytest.approx((1 / 3 + 0.5) / 2)  # 5/12
    ab, ac, bc = result.annotator_pairs
    assert ab == {"a": "ann", "b": "bob", "shared_items": 1, "mean_tau_b": pytest.approx(1 / 3)}
    assert ac == {"a": "ann", "b": "cat", "shared_items": 2, "mean_tau_b": pytest.approx(0.5)}
    assert (bc["a"], bc["b"], bc["shared_items"]) == ("bob", "cat", 1)
    assert math.isnan(bc["mean_tau_b"])  # their only shared item is the all-tied one


def test_ranking_agreement_uses_common_responses_and_later_revisions():
    result = ranking_agreement([
        # Common responses p, q: ann says p > q... (rank 1 is best), bob the reverse -> tau -1, W 0.
        ("i", "ann", {"p": 1, "q": 2, "r": 3}),
        ("i", "bob", {"p": 2, "q": 1, "s": 3}),
        # Only one response in common: no pair and no W.
        ("j", "ann", {"p": 1, "q": 2}),
        ("j", "bob", {"q": 1, "z": 2}),
        # A revision replaces bob's first ranking of k.
        ("k", "bob", {"u": 2, "v": 1}),
        ("k", "ann", {"u": 1, "v": 2}),
        ("k", "bob", {"u": 1, "v": 2}),
    ])
    assert result.rankings == 6
    assert result.items == 3
    assert [(row["item"], row["w"]) for row in result.per_item[:2]] == [("i", 0.0), ("k", 1.0)]
    assert result.per_item[2]["item"] == "j" and math.isnan(result.per_item[2]["w"])
    assert result.pairs == 2 and result.undefined_pairs == 1
    assert result.mean_tau_b == pytest.approx(0.0)  # (-1 + 1) / 2
    assert result.annotator_pairs == [{"a": "ann", "b": "bob", "shared_items": 3, "mean_tau_b": 0.0}]


def test_ranking_agreement_on_nothing():
    result = ranking_agreement([])
    assert (result.items, result.rankings, result.pairs, result.undefined_pairs) == (0, 0, 0, 0)
    assert math.isnan(result.mean_w) and math.isnan(result.median_w) and math.isnan(result.mean_tau_b)
    assert result.per_item == [] and result.annotator_pairs == []


RESPONSES = [f"r{i}" for i in range(6)]


@st.composite
def _judgments(draw):
    judgments = []
    for item in range(draw(st.integers(1, 4))):
        n = draw(st.integers(2, len(RESPONSES)))
        for annotator in draw(st.lists(st.sampled_from("abcd"), min_size=1, max_size=4, unique=True)):
            ranks = draw(st.lists(st.integers(1, n), min_size=n, max_size=n))
            judgments.append((f"i{item}", annotator, dict(zip(RESPONSES[:n], ranks, strict=True))))
    return judgments


def _numbers(result: RankingAgreement) -> list:
    flat = [result.items, result.rankings, result.mean_w, result.median_w, result.mean_tau_b,
            result.pairs, result.undefined_pairs]
    for row in result.per_item:
        flat += [row["item"], row["raters"], row["w"]]
    for pair in result.annotator_pairs:
        flat += [pair["a"], pair["b"], pair["shared_items"], pair["mean_tau_b"]]
    return flat


@settings(max_examples=200, deadline=None)
@given(_judgments(), st.permutations(RESPONSES))
def test_relabelling_responses_changes_nothing(judgments, permuted):
    relabel = dict(zip(RESPONSES, permuted, strict=True))
    renamed = [(i, a, {relabel[k]: r for k, r in ranking.items()}) for i, a, ranking in judgments]
    before, after = _numbers(ranking_agreement(judgments)), _numbers(ranking_agreement(renamed))
    assert after == pytest.approx(before, nan_ok=True, abs=1e-12)
