"""Aggregation checked against crowd-kit (the oracle) on simulated annotator pools; no database."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from crowdkit.aggregation import DawidSkene, MajorityVote

from calibration.generators import simulation as sm
from rewards.aggregation import dawid_skene, majority

LABELS = np.array(["a", "b", "tie", "both_bad"])


def pool_votes(seed: int, kinds: list[str], n_items: int = 300, per_item: int = 5):
    sim = sm.simulate(kinds=kinds, n_items=n_items, per_item=per_item, seed=seed)
    votes = [(int(i), f"w{int(w)}", str(LABELS[c])) for i, w, c in zip(sim.item, sim.annotator, sim.choice)]
    return sim, votes


def frame(votes) -> pd.DataFrame:
    return pd.DataFrame(votes, columns=["task", "worker", "label"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dawid_skene_equals_crowd_kit(seed):
    _, votes = pool_votes(seed, ["expert"] * 4 + ["noisy"] * 2 + ["length", "position", "fast"])
    ours, confusion = dawid_skene(votes)
    theirs = DawidSkene(n_iter=100).fit(frame(votes))
    probas = theirs.probas_
    for task, agg in ours.items():
        assert agg.label == theirs.labels_.loc[task]
        assert agg.confidence == pytest.approx(float(probas.loc[task, agg.label]), abs=1e-6)
    # The confusion matrices too: errors_[worker, observed][true] in crowd-kit.
    worker = "w0"
    classes = sorted(set(LABELS) & {v[2] for v in votes})
    for t, true in enumerate(classes):
        for o, observed in enumerate(classes):
            assert confusion[worker][t, o] == pytest.approx(float(theirs.errors_.loc[(worker, observed), true]), abs=1e-6)


def test_majority_equals_crowd_kit_where_there_is_a_single_winner():
    _, votes = pool_votes(4, ["expert"] * 3 + ["noisy"] * 4)
    ours = majority(votes)
    shares = MajorityVote().fit_predict_proba(frame(votes))
    for task, agg in ours.items():
        row = shares.loc[task]
        if agg.label is None:
            assert (row == row.max()).sum() > 1
        else:
            assert row.idxmax() == agg.label and agg.confidence == pytest.approx(row.max())


def test_dawid_skene_beats_majority_when_a_few_good_annotators_face_many_biased_ones():
    kinds = ["expert"] * 3 + ["position"] * 3 + ["noisy"] * 3
    sim, votes = pool_votes(11, kinds, n_items=400, per_item=7)
    truth = {i: ("a" if t == 0 else "b") for i, t in enumerate(sim.truth)}
    ds, _ = dawid_skene(votes)
    mv = majority(votes)
    right_ds = np.mean([ds[i].label == truth[i] for i in truth])
    right_mv = np.mean([mv[i].label == truth[i] for i in truth])
    print(f"\nagreement with the truth: Dawid-Skene {right_ds:.3f}, majority {right_mv:.3f}")
    assert right_ds > right_mv


def test_bradley_terry_matches_the_closed_form_crowd_kits_update_and_scipys_optimum():
    from crowdkit.aggregation import BradleyTerry
    from scipy.optimize import minimize

    from rewards.aggregation import _bt_fit, bradley_terry

    # Closed form: a beat b 3:1 and b beat c 2:1, so p_a/p_b = 3 and p_b/p_c = 2: 6/9, 2/9, 1/9.
    games = [("a", "b")] * 3 + [("b", "a")] + [("b", "c")] * 2 + [("c", "b")]
    fit = bradley_terry([("q", w, loser) for w, loser in games], n_iter=10_000, tol=1e-12)["q"]
    assert [fit[x] for x in "abc"] == pytest.approx([6 / 9, 2 / 9, 1 / 9], abs=1e-6)

    rng = np.random.default_rng(3)
    names = [f"r{i}" for i in range(6)]
    strengths = dict(zip(names, rng.lognormal(0, 1, 6)))
    games = []
    for _ in range(300):
        x, y = rng.choice(names, 2, replace=False)
        games.append((x, y) if rng.random() < strengths[x] / (strengths[x] + strengths[y]) else (y, x))
    # The same update as crowd-kit: after two updates (where crowd-kit 1.4.2 stops) the values agree.
    frame_ = pd.DataFrame([{"worker": "w", "left": w, "right": loser, "label": w} for w, loser in games])
    theirs = BradleyTerry(n_iter=100).fit_predict(frame_)
    index = {n: i for i, n in enumerate(sorted(names))}
    wins = np.zeros((6, 6))
    for w, loser in games:
        wins[index[w], index[loser]] += 1
    two = _bt_fit(wins, n_iter=2, tol=0.0)
    assert [two[index[n]] for n in names] == pytest.approx([float(theirs[n]) for n in names], abs=1e-12)
    # At convergence ours is the maximum-likelihood fit scipy finds on the log-likelihood.
    ours = bradley_terry([("q", w, loser) for w, loser in games], n_iter=10_000, tol=1e-12)["q"]

    def nll(theta):
        return -sum(theta[index[w]] - np.logaddexp(theta[index[w]], theta[index[loser]]) for w, loser in games)

    best = minimize(nll, np.zeros(6), method="BFGS", options={"gtol": 1e-10}).x
    expected = np.exp(best) / np.exp(best).sum()
    assert [ours[n] for n in names] == pytest.approx([expected[index[n]] for n in names], abs=1e-5)


def test_a_weight_counts_like_that_many_copies_of_the_vote():
    """Weights (a down-weighted biased judgment) are linear in every aggregation: a weight of 2 is
    the same as the vote listed twice, and weight 1 is the unweighted result. The copies are the
    oracle; crowd-kit (above) is for the unweighted case."""
    from rewards.aggregation import bradley_terry
    from rewards.bias_aware import bias_aware_fit

    _, votes = pool_votes(4, ["expert"] * 3 + ["noisy", "length"], n_items=120)
    doubled = {k for k in range(0, len(votes), 7)}
    weighted = [(*v, 2.0 if k in doubled else 1.0) for k, v in enumerate(votes)]
    copied = votes + [votes[k] for k in sorted(doubled)]
    for aggregate in (majority, lambda vs: dawid_skene(vs)[0]):
        by_weight, by_copy = aggregate(weighted), aggregate(copied)
        assert aggregate([(*v, 1.0) for v in votes]).keys() == aggregate(votes).keys()
        for task in by_copy:
            assert by_weight[task].label == by_copy[task].label
            assert by_weight[task].confidence == pytest.approx(by_copy[task].confidence, abs=1e-9)
    half = majority([("x", "w1", "a", 0.5), ("x", "w2", "a", 0.5), ("x", "w3", "b", 1.0)])
    assert half["x"].label is None, "two half votes tie one full one"

    games = [("p", "r1", "r2"), ("p", "r2", "r3"), ("p", "r1", "r3"), ("p", "r3", "r1")]
    assert bradley_terry([(*g, 2.0) if k == 1 else g for k, g in enumerate(games)])["p"] == pytest.approx(
        bradley_terry(games + [games[1]])["p"])

    decisive = [(i, w, c) for i, w, c in votes if c in ("a", "b")]
    item = np.array([i for i, _, _ in decisive])
    worker = np.array([int(w[1:]) for _, w, _ in decisive])
    chose_b = np.array([c == "b" for _, _, c in decisive], dtype=float)
    cues = np.zeros((len(decisive), 1))
    twice = np.arange(len(decisive)) % 5 == 0
    fit_w = bias_aware_fit(item, worker, chose_b, cues, n_items=120, n_annotators=5, weights=np.where(twice, 2.0, 1.0))
    rows = np.concatenate([np.arange(len(decisive)), np.flatnonzero(twice)])
    fit_c = bias_aware_fit(item[rows], worker[rows], chose_b[rows], cues[rows], n_items=120, n_annotators=5)
    assert fit_w.posterior_b == pytest.approx(fit_c.posterior_b, abs=1e-9)
