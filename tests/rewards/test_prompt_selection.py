"""Pre-PPO prompt selection: z-scores within each domain (scipy as the oracle), the hardest
fraction kept per domain, math and code first on request."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from rewards.prompt_selection import curriculum_order, domain_z_scores, select_hardest


def test_z_scores_are_standardised_within_each_domain():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(5, 2, 7), rng.normal(-3, 0.5, 5)])
    domains = ["code"] * 7 + ["chat"] * 5
    z = domain_z_scores(scores, domains)
    np.testing.assert_allclose(z[:7], stats.zscore(scores[:7]))
    np.testing.assert_allclose(z[7:], stats.zscore(scores[7:]))


def test_a_domain_with_equal_scores_or_one_prompt_gets_zero():
    assert list(domain_z_scores([1.0, 1.0, 7.0], ["a", "a", "b"])) == [0.0, 0.0, 0.0]


def test_keeps_the_lowest_scoring_fraction_of_every_domain():
    # Raw scores alone would keep only chat prompts (all far below math): per-domain z-scores
    # keep the hardest of each domain instead.
    scores = [10.0, 12.0, 11.0, 14.0, -5.0, -1.0, -3.0, -2.0]
    domains = ["math"] * 4 + ["chat"] * 4
    selection = select_hardest(scores, domains, fraction=0.5)
    assert selection.kept == [0, 2, 4, 6]
    assert selection.per_domain["math"] == {"candidates": 4, "kept": 2, "mean_score": 11.75,
                                            "cutoff_z": pytest.approx(stats.zscore([10, 12, 11, 14])[2])}
    assert selection.report()["kept"] == 4 and selection.report()["candidates"] == 8


@pytest.mark.parametrize("fraction, kept", [(1.0, 5), (0.5, 3), (0.2, 1), (0.01, 1)])
def test_the_kept_count_rounds_up_and_never_empties_a_domain(fraction, kept):
    selection = select_hardest([3.0, 1.0, 2.0, 5.0, 4.0], ["x"] * 5, fraction=fraction)
    assert len(selection.kept) == kept
    assert selection.kept == sorted(sorted(range(5), key=lambda i: [3, 1, 2, 5, 4][i])[:kept])


def test_curriculum_puts_math_then_code_first_and_keeps_order_inside():
    domains = ["chat", "code", "math", "chat", "math", "coding"]
    assert curriculum_order(range(6), domains) == [2, 4, 1, 5, 0, 3]
    selection = select_hardest([0.0] * 6, domains, fraction=1.0, curriculum=True)
    assert selection.kept == [2, 4, 1, 5, 0, 3]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        select_hardest([1.0], ["a"], fraction=0)
    with pytest.raises(ValueError):
        select_hardest([1.0, 2.0], ["a"], fraction=0.5)
