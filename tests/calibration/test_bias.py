"""Bias detectors: oracles for the statistics they use, text features, and a simulated pool with
known biases whose flags are reported as a confusion table."""
from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as statsmodels_api
from scipy import stats

from calibration import bias, health
from calibration.generators import simulation as sm

POOL = ["expert"] * 6 + ["noisy"] * 3 + ["length", "position", "assertive", "formatting", "fast"]


def items_of(s: sm.Simulation) -> bias.Items:
    fa = [bias.text_features(t) for t in s.text_a]
    fb = [bias.text_features(t) for t in s.text_b]
    len_a = np.array([f.chars for f in fa], dtype=float)
    len_b = np.array([f.chars for f in fb], dtype=float)
    return bias.Items(
        len_a=len_a, len_b=len_b,
        assert_a=np.array([f.assertiveness for f in fa]), assert_b=np.array([f.assertiveness for f in fb]),
        list_a=np.array([f.is_list for f in fa]), list_b=np.array([f.is_list for f in fb]),
        read_chars=len_a + len_b + 40, expert=np.where(s.is_anchor, s.truth, bias.NO_EXPERT),
    )


def judgments_of(s: sm.Simulation) -> bias.Judgments:
    return bias.Judgments(item=s.item, annotator=s.annotator, choice=s.choice, a_left=s.a_left, time_ms=s.time_ms)


def flag_confusion(kinds: list[str], detected: list[dict]) -> dict[str, dict[str, int]]:
    """kind of annotator -> flag kind (or 'none') -> how many annotators of that kind got it."""
    table: dict[str, dict[str, int]] = {}
    for kind, row in zip(kinds, detected):
        got = [f.kind for f in row["flags"]] or ["none"]
        for flag in got:
            table.setdefault(kind, {}).setdefault(flag, 0)
            table[kind][flag] += 1
    return table


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_simulated_pool_each_biased_annotator_is_flagged_for_its_bias_and_no_honest_one_is(seed, capsys):
    s = sm.simulate(kinds=POOL, n_items=600, per_item=7, seed=seed)
    detected = bias.detect(judgments_of(s), items_of(s), len(POOL))
    confusion = flag_confusion(POOL, detected)
    with capsys.disabled():
        print(f"\nflag confusion, seed {seed} (annotator kind -> flags raised):")
        for kind in sm.KINDS:
            print(f"  {kind:>10}: {confusion.get(kind)}")
    for kind, row in zip(POOL, detected):
        kinds = {f.kind for f in row["flags"]}
        expected = {sm.EXPECTED_FLAG[kind]} if kind in sm.EXPECTED_FLAG else set()
        assert kinds == expected, (kind, [f.explanation for f in row["flags"]])


def test_a_flag_carries_numbers_examples_and_a_plain_explanation():
    s = sm.simulate(kinds=POOL, n_items=600, per_item=7, seed=4)
    detected = bias.detect(judgments_of(s), items_of(s), len(POOL))
    flag = next(f for f in detected[POOL.index("length")]["flags"] if f.kind == "length")
    assert flag.evidence["rate"] > flag.evidence["pool_rate"] + 0.15
    assert flag.evidence["n"] >= 20 and flag.evidence["pool_p"] < 0.01
    assert flag.evidence["logit_low"] > 0  # the regression agrees: length drives the choice
    assert "longer response" in flag.explanation and "%" in flag.explanation
    # Examples are items where this annotator took the longer side.
    gap = items_of(s).len_b - items_of(s).len_a
    assert len(flag.examples) == 5
    for item in flag.examples:
        mine = (s.item == item) & (s.annotator == POOL.index("length"))
        chose = s.choice[mine][0]
        assert (chose == bias.B) == (gap[item] > 0)


def test_thresholds_are_respected():
    s = sm.simulate(kinds=POOL, n_items=600, per_item=7, seed=1)
    strict = bias.Thresholds(margin=0.6, position_margin=0.45, fast_share=1.01)
    detected = bias.detect(judgments_of(s), items_of(s), len(POOL), strict)
    assert all(not row["flags"] for row in detected)
    few = bias.Thresholds(min_n=10_000)
    assert all(not row["flags"] for row in bias.detect(judgments_of(s), items_of(s), len(POOL), few))


def test_wrong_but_assertive_on_anchors_is_measured_against_the_pool():
    kinds = ["expert"] * 6 + ["assertive"]
    s = sm.simulate(kinds=kinds, n_items=900, per_item=7, anchor_share=0.6, seed=5)
    detected = bias.detect(judgments_of(s), items_of(s), len(kinds))
    biased = detected[-1]["confidence"]
    honest = detected[0]["confidence"]
    assert biased["wrong_assertive_n"] >= 20
    assert biased["wrong_assertive_rate"] > biased["wrong_assertive_pool_rate"] + 0.3
    assert abs(honest["wrong_assertive_rate"] - honest["wrong_assertive_pool_rate"]) < 0.15


@pytest.mark.parametrize("seed", range(4))
def test_logit_slope_equals_statsmodels(seed):
    rng = np.random.default_rng(seed)
    x = np.tanh(rng.normal(size=400))
    y = (rng.random(400) < 1 / (1 + np.exp(-(0.3 + 1.5 * x)))).astype(float)
    ours = bias.logit_slope(x, y)
    fit = statsmodels_api.Logit(y, statsmodels_api.add_constant(x)).fit(disp=0)
    low, high = fit.conf_int()[1]
    assert (ours.coef, ours.se, ours.low, ours.high) == pytest.approx((fit.params[1], fit.bse[1], low, high), abs=1e-7)


def test_logit_slope_declines_separated_or_constant_data():
    assert bias.logit_slope(np.array([-1.0, -0.5, 0.5, 1.0]), np.array([0.0, 0.0, 1.0, 1.0])) is None
    assert bias.logit_slope(np.zeros(10), np.array([0.0, 1.0] * 5)) is None


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (5, 10), (9, 10), (60, 100), (41, 100), (150, 200)])
def test_position_binomial_test_equals_scipy(k, n):
    assert bias.two_sided_binom_half(np.array([k]), np.array([n]))[0] == pytest.approx(
        stats.binomtest(k, n, 0.5).pvalue, rel=1e-9)


def test_text_features_count_hedges_boosters_and_lists():
    f = bias.text_features("I think it might work. Perhaps not.")
    assert (f.hedges, f.boosters) == (3, 0)
    g = bias.text_features("It will definitely work. Clearly, this is certainly true, of course.")
    assert g.boosters == 4 and g.hedges == 0 and g.assertiveness > 0 > f.assertiveness
    # Whole words only: "mayor" is not "may", "clearance" is not "clear".
    assert bias.text_features("The mayor approved the clearance.").hedges == 0
    assert bias.text_features("The mayor approved the clearance.").boosters == 0
    assert bias.text_features("- one\n- two\n- three").is_list
    assert bias.text_features("1. one\n2) two").is_list
    assert not bias.text_features("A sentence - with a dash.\nAnother line.").is_list


def test_dataset_health_sees_a_set_that_teaches_longer_is_better():
    len_a = np.array([100.0, 300, 120, 400, 50, 60])
    len_b = np.array([300.0, 100, 400, 120, 55, 65])
    votes = np.array([[0, 3, 0, 0], [3, 0, 0, 0], [1, 2, 0, 0], [2, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 2]])
    h = health.dataset_health(
        len_a=len_a, len_b=len_b, votes=votes, domain=["code", "code", "math", "math", "law", "law"],
        difficulty=["easy", "hard", "easy", "easy", "easy", "easy"], hard=np.array([0, 1, 0, 0, 0, 0], dtype=bool),
        length_gap_chars=30, domain_targets={"code": 0.2, "math": 0.2, "law": 0.2, "medical": 0.4},
        difficulty_targets={}, hard_share_min=0.2, hard_share_max=0.3,
    )
    assert h["pairs"] == 4  # item 4 is a 1-1 split, item 5 is both-bad only
    assert h["length"]["chosen_longer_share"] == 1.0 and h["length"]["pairs_with_gap"] == 4
    assert h["tie_rate"] == pytest.approx(1 / 16) and h["both_bad_rate"] == pytest.approx(2 / 16)
    assert h["hard_share"] == pytest.approx(1 / 6, abs=1e-4)
    assert any("longer is better" in w for w in h["warnings"])
    assert any("Hard cases are 17%" in w for w in h["warnings"])
    medical = next(r for r in h["domains"] if r["name"] == "medical")
    assert medical["items"] == 0 and any("'medical'" in w for w in h["warnings"])
    assert sum(h["length"]["histogram"]["counts"]) == 4


def test_a_length_biased_annotator_is_not_blamed_for_lists_that_happen_to_be_longer():
    # In this draw the list-formatted side is the longer one far more often than not, so the
    # length-biased annotator also "prefers lists" by raw rate; the controlled regression clears it.
    kinds = ["expert"] * 6 + ["noisy"] * 2 + ["length", "position", "assertive", "formatting", "fast"]
    s = sm.simulate(kinds=kinds, n_items=500, per_item=7, seed=11, days=21)
    items = items_of(s)
    one = items.list_a ^ items.list_b
    list_len = np.where(items.list_a, items.len_a, items.len_b)[one]
    other_len = np.where(items.list_a, items.len_b, items.len_a)[one]
    assert (list_len > other_len + 30).mean() > (other_len > list_len + 30).mean() + 0.2
    row = bias.detect(judgments_of(s), items, len(kinds))[kinds.index("length")]
    assert row["formatting"]["rate"] > row["formatting"]["pool_rate"] + 0.15  # the raw rate is confounded
    assert {f.kind for f in row["flags"]} == {"length"}
    assert row["formatting"]["controlled_z"] < 2


def test_multivariable_logit_equals_statsmodels():
    rng = np.random.default_rng(7)
    X = np.column_stack([np.ones(600), rng.normal(size=600), rng.choice([-1.0, 0.0, 1.0], 600), rng.normal(size=600)])
    y = (rng.random(600) < 1 / (1 + np.exp(-(X @ np.array([0.2, 1.0, -0.7, 0.0]))))).astype(float)
    beta, se = bias.logit_fit(X, y)
    fit = statsmodels_api.Logit(y, X).fit(disp=0)
    np.testing.assert_allclose(beta, fit.params, atol=1e-7)
    np.testing.assert_allclose(se, fit.bse, atol=1e-7)


def test_the_expert_comparison_is_an_exact_one_sided_mcnemar_test():
    # Two annotators on 40 anchors: the first takes the longer side on 30, the expert on 12.
    rng = np.random.default_rng(3)
    n = 40
    len_a = rng.integers(100, 200, n).astype(float)
    len_b = len_a + np.where(rng.random(n) < 0.5, 80.0, -80.0)
    longer = np.where(len_b > len_a, bias.B, bias.A)
    expert = np.where(np.arange(n) < 12, longer, 1 - longer)
    annotator_choice = np.where(np.arange(n) < 30, longer, 1 - longer)
    j = bias.Judgments(item=np.arange(n), annotator=np.zeros(n, dtype=int), choice=annotator_choice,
                       a_left=np.ones(n, bool), time_ms=np.full(n, 60_000))
    pref = bias.feature_preference(j, longer, 1, expert=expert)
    above = int(((annotator_choice == longer) & (expert != longer)).sum())
    below = int(((annotator_choice != longer) & (expert == longer)).sum())
    assert (above, below) == (18, 0)
    assert pref.expert_p[0] == pytest.approx(stats.binomtest(above, above + below, 0.5, alternative="greater").pvalue)
    assert (pref.annotator_rate_on_anchors[0], pref.expert_rate[0]) == (0.75, 0.3)


def test_without_any_lists_the_controlled_check_still_runs_for_confidence():
    s = sm.simulate(kinds=POOL, n_items=600, per_item=7, seed=1)
    items = items_of(s)
    items.list_a[:] = False
    items.list_b[:] = False
    detected = bias.detect(judgments_of(s), items, len(POOL))
    assertive = detected[POOL.index("assertive")]
    assert {f.kind for f in assertive["flags"]} == {"confidence"}
    assert assertive["confidence"]["controlled_z"] > 3
    assert all(not any(f.kind == "formatting" for f in row["flags"]) for row in detected)


# Paraphrases written for this test, none of them a lexicon line as it stands: they exercise the
# mechanisms (longest match, negation with words in between, doubt words flipped, sentence scope).
HEDGED_PARAPHRASES = [
    "I'm not a hundred percent certain, but the function returns the sum.",
    "To be honest I'm not totally sure the contract can be ended that way.",
    "This isn't always how a binary search behaves.",
    "I can't really say for sure whether interest is charged monthly.",
    "It is hardly clear that the medicine should be taken with food.",
    "As far as I can remember, water boils at one hundred degrees.",
    "Nobody can be certain the capital is Canberra.",
]
BOOSTED_PARAPHRASES = [
    "Without the slightest doubt, the function returns the sum.",
    "There isn't any doubt: the contract can be ended that way.",
    "A binary search halves the interval, no doubt about it.",
    "Interest is charged monthly, and nobody should doubt it.",
    "You can be absolutely sure the medicine should be taken with food.",
    "Water boils at one hundred degrees, without any doubt.",
    "I can assure you the capital is Canberra.",
]


@pytest.mark.parametrize("hedged, boosted", list(zip(HEDGED_PARAPHRASES, BOOSTED_PARAPHRASES)))
def test_assertiveness_reads_paraphrases_the_lexicon_does_not_list(hedged, boosted):
    """The detector compares the two sides of a pair: the boosted paraphrase must read as more
    assertive than the hedged one, each with its marker found."""
    h, b = bias.text_features(hedged), bias.text_features(boosted)
    assert h.hedges > 0 and b.boosters > 0 and h.assertiveness < 0 and b.assertiveness > h.assertiveness, (
        hedged, (h.hedges, h.boosters), boosted, (b.hedges, b.boosters))


def test_text_features_handle_negation_phrases_and_sentences():
    # A booster phrase with a hedge word inside it is a booster ("doubt" inside "without any doubt").
    assert (bias.text_features("Without any doubt, it works.").boosters, bias.text_features("Without any doubt, it works.").hedges) == (1, 0)
    # Multi-word hedges, and a booster in the scope of a negation, are hedges.
    for text in ("I'm not entirely sure.", "It is not clear.", "This does not always hold.", "I cannot say for certain."):
        f = bias.text_features(text)
        assert (f.hedges, f.boosters) == (1, 0), text
    # Negation reaches five words back, stops at a clause boundary and never crosses a sentence.
    assert bias.text_features("I am not a hundred percent certain.").hedges == 1
    assert bias.text_features("No, it is certainly right.").boosters == 1
    assert (bias.text_features("It is not. Certainly it works.").boosters) == 1
    assert bias.text_features("Not only is it clear, it is proven.").hedges == 0  # "not only": emphasis
    # Curly apostrophes read like straight ones.
    assert bias.text_features("There isn\u2019t any doubt.").boosters == 1


# Phrasings of our own for a pool we did not tune on: boosters holding a hedge word ("doubt"),
# negated boosters and multi-word hedges, none of them a lexicon line verbatim.
PARAPHRASED_TONES = (
    ("I'm not entirely sure, but {s}", "As far as I can remember, {s}", "{s} Then again, I can't say for certain.",
     "It's not clear to me, though {s}"),
    ("Without the slightest doubt, {s}", "{s} There isn't any doubt about that.", "You can be absolutely sure: {s}",
     "I can assure you that {s}"),
)


@pytest.mark.parametrize("seed", [5, 6])
def test_assertive_raters_are_flagged_on_phrasing_the_fixtures_never_use(seed):
    """The planted preference follows the tone each side was written in, not what the lexicon
    measures: every assertive rater is flagged for confidence, and no honest one for anything."""
    kinds = ["expert"] * 6 + ["assertive"] * 3
    s = sm.simulate(kinds=kinds, n_items=600, per_item=6, seed=seed, phrasing=PARAPHRASED_TONES,
                    plant_by_written_tone=True)
    detected = bias.detect(judgments_of(s), items_of(s), len(kinds))
    for kind, row in zip(kinds, detected):
        flags = {f.kind for f in row["flags"]}
        assert flags == ({"confidence"} if kind == "assertive" else set()), (kind, [f.explanation for f in row["flags"]])
