"""Aggregating several annotators' choices on one item into one label with a confidence. Pure:
numpy only, no Django, no pandas.

Dawid-Skene is our own numpy port of crowd-kit's `DawidSkene` (same initialisation from vote
shares, same EM steps, same evidence-lower-bound stopping rule), checked against crowd-kit in
tests/rewards/test_aggregation.py. Why not call crowd-kit here: installing crowd-kit pulls
transformers, nltk and pyarrow, which the web core must install without (they live in the `train`
extra), and freezing a preference set is a web-core action. crowd-kit stays the oracle.

Votes may carry a fourth element, a weight (default 1): a down-weighted judgment (a flagged
rater's where their bias applies, CurationPolicy.biased_weight) counts that much in the vote
shares, in Dawid-Skene's likelihood and M-step, and in Bradley-Terry's win counts. With every
weight 1 the results are the unweighted ones (the crowd-kit comparisons run that way).
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

EPS = 1e-10  # crowd-kit's _EPS: error rates and priors never reach zero


@dataclass(frozen=True)
class Aggregate:
    label: str | None  # None: no single winner (a tie in the vote)
    confidence: float  # posterior probability of `label` (vote share for majority)
    votes: int


def _index(values: Iterable[Hashable]) -> tuple[list, np.ndarray]:
    keys: dict[Hashable, int] = {}
    codes = [keys.setdefault(v, len(keys)) for v in values]
    return list(keys), np.asarray(codes, dtype=np.int64)


@dataclass
class _Votes:
    items: list
    workers: list
    classes: list
    item: np.ndarray
    worker: np.ndarray
    label: np.ndarray
    weight: np.ndarray

    @classmethod
    def of(cls, votes: Sequence[tuple]) -> _Votes:
        items, item = _index(v[0] for v in votes)
        workers, worker = _index(v[1] for v in votes)
        classes = sorted({v[2] for v in votes})
        label = np.asarray([classes.index(v[2]) for v in votes], dtype=np.int64)
        weight = np.asarray([float(v[3]) if len(v) > 3 else 1.0 for v in votes])
        return cls(items, workers, classes, item, worker, label, weight)

    def shares(self) -> np.ndarray:
        counts = np.zeros((len(self.items), len(self.classes)))
        np.add.at(counts, (self.item, self.label), self.weight)
        return counts / np.clip(counts.sum(axis=1, keepdims=True), EPS, None)


def majority(votes: Sequence[tuple[Hashable, Hashable, str]]) -> dict[Hashable, Aggregate]:
    """Plurality per item; a tie for first place has no label. Confidence: the winner's share."""
    if not votes:
        return {}
    v = _Votes.of(votes)
    shares = v.shares()
    n = np.bincount(v.item, minlength=len(v.items))
    out = {}
    for i, key in enumerate(v.items):
        best = shares[i].max()
        winners = np.flatnonzero(np.isclose(shares[i], best))
        label = v.classes[int(winners[0])] if winners.size == 1 else None
        out[key] = Aggregate(label=label, confidence=float(best), votes=int(n[i]))
    return out


def dawid_skene(
    votes: Sequence[tuple[Hashable, Hashable, str]], *, n_iter: int = 100, tol: float = 1e-5
) -> tuple[dict[Hashable, Aggregate], dict[Hashable, np.ndarray]]:
    """Dawid-Skene EM: per item the most probable true label and its posterior; per worker the
    estimated confusion matrix (rows: true class, columns: what they answered; order: sorted labels)."""
    if not votes:
        return {}, {}
    v = _Votes.of(votes)
    n_items, n_workers, k = len(v.items), len(v.workers), len(v.classes)
    probas = v.shares()  # initialisation: majority vote shares, as crowd-kit
    priors = probas.mean(axis=0)
    errors = _m_step(v, probas, n_workers, k)
    loss = -np.inf
    for _ in range(n_iter):
        probas = _e_step(v, priors, errors, n_items)
        priors = probas.mean(axis=0)
        errors = _m_step(v, probas, n_workers, k)
        new_loss = _elbo(v, probas, priors, errors) / v.item.size
        if new_loss - loss < tol:
            break
        loss = new_loss
    n = np.bincount(v.item, minlength=n_items)
    out = {}
    for i, key in enumerate(v.items):
        best = int(np.argmax(probas[i]))
        # Two labels equally probable (a 1-1 split between like raters): no winner, as in
        # majority. crowd-kit would take the first in label order, so "a" would win every such tie.
        runner_up = np.partition(probas[i], -2)[-2] if probas.shape[1] > 1 else -1.0
        label = None if np.isclose(runner_up, probas[i, best]) else v.classes[best]
        out[key] = Aggregate(label=label, confidence=float(probas[i, best]), votes=int(n[i]))
    confusion = {w: errors[j].T.copy() for j, w in enumerate(v.workers)}
    return out, confusion


def _m_step(v: _Votes, probas: np.ndarray, n_workers: int, k: int) -> np.ndarray:
    """errors[worker, observed, true]: P(answers `observed` | the truth is `true`)."""
    errors = np.zeros((n_workers, k, k))
    np.add.at(errors, (v.worker, v.label), probas[v.item] * v.weight[:, None])
    errors = np.clip(errors, EPS, None)
    return errors / errors.sum(axis=1, keepdims=True)


def _e_step(v: _Votes, priors: np.ndarray, errors: np.ndarray, n_items: int) -> np.ndarray:
    # In logs: products of many small probabilities underflow.
    log_lik = np.zeros((n_items, priors.size))
    np.add.at(log_lik, v.item, np.log2(errors[v.worker, v.label]) * v.weight[:, None])
    log_lik += np.log2(np.clip(priors, EPS, None))
    scaled = np.exp2(log_lik - log_lik.max(axis=1, keepdims=True))
    return scaled / scaled.sum(axis=1, keepdims=True)


def _elbo(v: _Votes, probas: np.ndarray, priors: np.ndarray, errors: np.ndarray) -> float:
    joint = np.log(errors[v.worker, v.label]) + np.log(np.clip(priors, EPS, None))
    expectation = float((probas[v.item] * joint * v.weight[:, None]).sum())
    clipped = np.clip(probas, EPS, None)
    entropy = float(-(np.log(clipped) * clipped).sum())
    return expectation + entropy


def bradley_terry(
    outcomes: Sequence[tuple], *, n_iter: int = 100, tol: float = 1e-5
) -> dict[Hashable, dict[Hashable, float]]:
    """Bradley-Terry strengths from (group, winner, loser[, weight]) outcomes, fitted per group (a
    prompt's responses are only ever compared with each other): {group: {response: p}}, p summing
    to 1.

    The update is crowd-kit's `BradleyTerry` (Zermelo/Hunter MM: p_i = wins_i / sum_j n_ij /
    (p_i + p_j), renormalised, stop when the L1 change is under `tol`), run on one small dense
    matrix per group instead of one dense matrix over every response of the project, which
    would not fit in memory at scale. Why not crowd-kit itself: besides its dependencies, its
    loop keeps `p_old` as an alias of `p_new`, so the change it measures is always 0 and it stops
    after the second update, far from the maximum-likelihood fit (1.4.2; on a:b won 3:1, b:c 2:1
    it gives 0.571/0.264/0.164 instead of 6/9, 2/9, 1/9). Tests: the closed form, crowd-kit's
    own two updates, and scipy's optimiser on the likelihood."""
    by_group: dict[Hashable, list[tuple[Hashable, Hashable, float]]] = {}
    for group, winner, loser, *weight in outcomes:
        by_group.setdefault(group, []).append((winner, loser, float(weight[0]) if weight else 1.0))
    out = {}
    for group, games in by_group.items():
        labels = sorted({x for game in games for x in game[:2]}, key=str)
        index = {label: i for i, label in enumerate(labels)}
        wins = np.zeros((len(labels), len(labels)))
        for winner, loser, weight in games:
            wins[index[winner], index[loser]] += weight
        out[group] = dict(zip(labels, _bt_fit(wins, n_iter=n_iter, tol=tol)))
    return out


def _bt_fit(M: np.ndarray, *, n_iter: int, tol: float) -> np.ndarray:
    T = M.T + M
    active = T > 0
    w = M.sum(axis=1)
    Z = np.zeros_like(M)
    p = np.ones(M.shape[0])
    p_new = p.copy() / p.sum()
    p_old = None
    for _ in range(n_iter):
        P = np.broadcast_to(p, M.shape)
        Z[active] = T[active] / (P[active] + P.T[active])
        p_new = w / Z.sum(axis=0)
        p_new = p_new / p_new.sum()
        p = p_new.copy()
        if p_old is not None and np.abs(p_new - p_old).sum() < tol:
            break
        p_old = p_new
    return p_new
