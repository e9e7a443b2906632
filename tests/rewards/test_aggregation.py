"""Aggregation checked against crowd-kit (the oracle) on simulated annotator pools; no database."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from crowdkit.aggregation import DawidSkene, MajorityVote

from calibration import simulation as sm
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
