"""Bias-aware aggregation of pairwise judgments: a latent-truth model in which each annotator has
a reliability and a sensitivity to each measured cue (the side shown on the left, the longer
response, the more assertive one, the list-formatted one, ...), fitted by EM. Pure numpy.

The model. Item i has a hidden winner T_i in {A, B}; write t_i = +1 when B wins, -1 when A does.
Judgment j (annotator a, item i) chooses B (y_j = 1) or A (y_j = 0) with

    P(y_j = 1 | t_i) = sigmoid(alpha_a * t_i + sum_f beta_af * c_jf)

where c_jf in {-1, 0, +1} says which side cue f favours in that judgment (+1: B has it) and
alpha_a is how strongly a follows the truth. Dawid-Skene's binary model is the special case
beta = 0 (with symmetric errors); a rater who follows length has a large beta_a,length, and their
choice on a pair where length and truth disagree is read as evidence about length, not about
the winner.

EM. E-step: the posterior q_i = P(t_i = +1 | all judgments on i) from the prior pi and every
judgment's likelihood under both values of t_i. M-step: per annotator, a weighted logistic
regression with two rows per judgment (t = +1 with weight q_i, t = -1 with weight 1 - q_i) on the
features [t, c_1..c_F], by a few Newton steps with a ridge penalty (lambda on beta, pulling
sensitivities to 0 when there is little evidence, and a weaker one on alpha); pi is the mean of
q. Start: the vote shares of the decisive judgments. Stop when no posterior moves by more than
`tol`.

Self-consistency. An annotator's swapped re-asks (calibration/services/reasks.py) say how noisy
they are: with n re-asks of which a share f flipped, the reliability's ridge is centred on the
alpha that f implies (a rater right with probability p each time flips with 2p(1-p)) and weighted
by the inverse of that estimate's variance (delta method), instead of on 1 with weight
ridge_alpha. Consistency measures noise only: a rater who always picks the longer response is
consistent, and that is what the cue sensitivities are for.

Identifiability: a cue that every annotator follows alike cannot be told from the truth it
correlates with; the ridge keeps such shared sensitivities small, so the model falls back to
Dawid-Skene where it cannot separate them (tests/rewards/test_bias_aware.py compares the two on
pools with and without planted biases).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BiasAwareFit:
    posterior_b: np.ndarray  # per item: P(B is the better response)
    reliability: np.ndarray  # per annotator: alpha
    sensitivity: np.ndarray  # per annotator x cue: beta
    prior_b: float
    iterations: int


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def bias_aware_fit(item: np.ndarray, annotator: np.ndarray, chose_b: np.ndarray, cues: np.ndarray, *,
                   n_items: int, n_annotators: int, ridge_beta: float = 1.0, ridge_alpha: float = 0.5,
                   n_iter: int = 50, tol: float = 1e-4, reliability_centre: np.ndarray | None = None,
                   reliability_weight: np.ndarray | None = None, weights: np.ndarray | None = None) -> BiasAwareFit:
    """Fit on decisive judgments (chose_b 0/1). `cues` is m x F in {-1, 0, 1}. Per annotator,
    `reliability_centre`/`reliability_weight` replace the reliability ridge's centre (1) and weight
    (ridge_alpha), e.g. from self-consistency (consistency_prior). `weights` (per judgment, default
    1) scale each judgment's likelihood, in the E-step and the M-step alike."""
    item = np.asarray(item, dtype=np.int64)
    annotator = np.asarray(annotator, dtype=np.int64)
    y = np.asarray(chose_b, dtype=float)
    c = np.asarray(cues, dtype=float).reshape(item.size, -1)
    r = np.ones(item.size) if weights is None else np.asarray(weights, dtype=float)
    n_cues = c.shape[1]
    # Start from the decisive vote shares.
    votes_b = np.bincount(item, weights=y * r, minlength=n_items)
    votes = np.bincount(item, weights=r, minlength=n_items)
    q = np.where(votes > 0, (votes_b + 0.5) / (votes + 1.0), 0.5)
    centre = np.ones(n_annotators) if reliability_centre is None else np.asarray(reliability_centre, dtype=float)
    weight = (np.full(n_annotators, ridge_alpha) if reliability_weight is None
              else np.asarray(reliability_weight, dtype=float))
    alpha = centre.copy()
    beta = np.zeros((n_annotators, n_cues))
    prior = 0.5
    order = np.argsort(annotator, kind="stable")
    bounds = np.searchsorted(annotator[order], np.arange(n_annotators + 1))
    iterations = 0
    for iterations in range(1, n_iter + 1):
        # M-step, per annotator.
        for a in range(n_annotators):
            rows = order[bounds[a]:bounds[a + 1]]
            if rows.size == 0:
                continue
            alpha[a], beta[a] = _fit_annotator(y[rows], q[item[rows]], c[rows], alpha[a], beta[a],
                                               weight[a], ridge_beta, centre[a], r[rows])
        prior = float(np.clip(q.mean(), 0.05, 0.95))
        # E-step.
        bias_term = (beta[annotator] * c).sum(axis=1)
        z_plus = alpha[annotator] + bias_term
        z_minus = -alpha[annotator] + bias_term
        ll_plus = r * (y * _log_sigmoid(z_plus) + (1 - y) * _log_sigmoid(-z_plus))
        ll_minus = r * (y * _log_sigmoid(z_minus) + (1 - y) * _log_sigmoid(-z_minus))
        lp = np.log(prior) + np.bincount(item, weights=ll_plus, minlength=n_items)
        lm = np.log(1 - prior) + np.bincount(item, weights=ll_minus, minlength=n_items)
        new_q = _sigmoid(lp - lm)
        new_q = np.where(votes > 0, new_q, 0.5)
        moved = float(np.abs(new_q - q).max()) if n_items else 0.0
        q = new_q
        if moved < tol:
            break
    return BiasAwareFit(posterior_b=q, reliability=alpha, sensitivity=beta, prior_b=prior, iterations=iterations)


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def _fit_annotator(y, q, c, alpha, beta, ridge_alpha, ridge_beta, alpha_centre: float = 1.0, r=None,
                   steps: int = 8):
    """Weighted ridge logistic regression: rows (t=+1, weight q r) and (t=-1, weight (1-q) r), r the
    judgments' own weights (1 unless down-weighted)."""
    r = np.ones(y.size) if r is None else r
    n = y.size
    t = np.concatenate([np.ones(n), -np.ones(n)])
    X = np.column_stack([t, np.vstack([c, c])])
    target = np.concatenate([y, y])
    w = np.concatenate([q * r, (1 - q) * r])
    theta = np.concatenate([[alpha], beta])
    penalty = np.concatenate([[ridge_alpha], np.full(beta.size, ridge_beta)])
    # The reliability's ridge pulls toward alpha_centre (1: a typical rater), the sensitivities' toward 0.
    centre = np.concatenate([[alpha_centre], np.zeros(beta.size)])
    for _ in range(steps):
        p = _sigmoid(X @ theta)
        grad = X.T @ (w * (target - p)) - penalty * (theta - centre)
        hess = (X * (w * p * (1 - p))[:, None]).T @ X + np.diag(penalty)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break
        theta = theta + step
        if np.abs(step).max() < 1e-6:
            break
    return float(theta[0]), theta[1:]


def consistency_prior(reasks: int, flips: int, *, ridge_alpha: float = 0.5, cap_p: float = 0.98) -> tuple[float, float]:
    """(centre, weight) of an annotator's reliability ridge from their swapped re-asks: the alpha
    a flip rate f implies, logit(p) with p = (1 + sqrt(1 - 2f)) / 2 (p capped at `cap_p`; f of 1/2
    or more is a coin, alpha 0), weighted by n / (f (1 - f) (d alpha / d f)^2), the inverse of its
    delta-method variance, plus the usual ridge_alpha. No re-asks: (1, ridge_alpha)."""
    if reasks <= 0:
        return 1.0, ridge_alpha
    # f at least 1/(2n): a rater who never flipped in n re-asks is not known to be perfect.
    f = min(max(flips / reasks, 0.5 / reasks), 0.5 - 1e-6)
    p = min((1.0 + np.sqrt(1.0 - 2.0 * f)) / 2.0, cap_p)
    centre = float(np.log(p / (1.0 - p)))
    slope = (1.0 / (p * (1.0 - p))) * (1.0 / (2.0 * np.sqrt(1.0 - 2.0 * f)))  # |d alpha / d f|
    weight = reasks / (f * (1.0 - f) * slope * slope)
    return centre, ridge_alpha + float(weight)
