"""Inter-annotator agreement over long-form judgments: percent agreement, Fleiss' κ,
Krippendorff's α (nominal or ordinal, missing data allowed), Cohen's κ for every pair of
annotators, and unit-bootstrap confidence intervals. Pure numpy, no Django.

Why our own code and not the `krippendorff` package (which the tests use as the oracle): the
package wants a dense coders x units matrix and has no bootstrap. Here everything starts from the
units x values count matrix, built straight from (unit, value) pairs, so missing data costs nothing,
and a bootstrap over units is one matrix product (the per-unit coincidence contributions weighted
by multinomial draws) instead of B recomputations. bench/analytics.py compares the speed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CI_LEVEL = 0.95
BOOTSTRAP_CELLS = 4_000_000  # resample weights held at once (samples x units): about 32 MB


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict:
        return {"value": _round(self.value), "low": _round(self.low), "high": _round(self.high)}


def _round(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def value_counts(unit: np.ndarray, value: np.ndarray, n_values: int, n_units: int | None = None) -> np.ndarray:
    """Units x values count matrix from long-form (unit index, value index) pairs. Negative values
    are missing and dropped. With `n_units`, unit indexes are taken as they are (0..n_units-1, so
    several matrices over the same units align row by row); without, units are renumbered densely."""
    unit = np.asarray(unit)
    value = np.asarray(value)
    if n_units is None:
        unit = np.unique(unit, return_inverse=True)[1].reshape(-1)
        n_units = int(unit.max()) + 1 if unit.size else 0
    keep = value >= 0
    flat = unit[keep].astype(np.int64) * n_values + value[keep]
    return np.bincount(flat, minlength=n_units * n_values).reshape(n_units, n_values).astype(float)


def _pairable(counts: np.ndarray) -> np.ndarray:
    return counts[counts.sum(axis=1) >= 2]


def _unit_coincidences(counts: np.ndarray) -> np.ndarray:
    """Each unit's contribution to the coincidence matrix, flattened: (units, V*V)."""
    m = counts.sum(axis=1)
    outer = counts[:, :, None] * counts[:, None, :]
    idx = np.arange(counts.shape[1])
    outer[:, idx, idx] -= counts
    return (outer / (m - 1)[:, None, None]).reshape(len(counts), -1)


def _distance(level: str, totals: np.ndarray) -> np.ndarray:
    """Squared difference function δ²(c, k) of Krippendorff (2011), for values 0..V-1 (ordinal
    values in rank order); `totals` (..., V) are the marginal value counts n_c."""
    v = totals.shape[-1]
    if level == "nominal":
        return np.broadcast_to(1.0 - np.eye(v), totals.shape[:-1] + (v, v))
    if level == "ordinal":
        cum = np.cumsum(totals, axis=-1)
        # sum_{g=c..k} n_g - (n_c + n_k)/2, for c <= k; symmetric.
        lo = np.minimum.outer(np.arange(v), np.arange(v))
        hi = np.maximum.outer(np.arange(v), np.arange(v))
        between = cum[..., hi] - cum[..., lo] + totals[..., lo]
        return (between - (totals[..., lo] + totals[..., hi]) / 2.0) ** 2
    if level == "interval":
        vals = np.arange(v, dtype=float)
        return np.broadcast_to((vals[:, None] - vals[None, :]) ** 2, totals.shape[:-1] + (v, v))
    raise ValueError(f"unknown level of measurement {level!r}")


def _alpha_from_coincidences(o: np.ndarray, level: str) -> np.ndarray:
    """α from coincidence matrices o (..., V, V)."""
    totals = o.sum(axis=-1)
    n = totals.sum(axis=-1)
    d = _distance(level, totals)
    observed = (o * d).sum(axis=(-2, -1))
    expected = (totals[..., :, None] * totals[..., None, :] * d).sum(axis=(-2, -1)) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - observed / expected


def krippendorff_alpha(counts: np.ndarray, level: str = "nominal") -> float:
    """Krippendorff's α from a units x values count matrix (values in order for ordinal)."""
    counts = _pairable(np.asarray(counts, dtype=float))
    if len(counts) == 0:
        return float("nan")
    v = counts.shape[1]
    o = _unit_coincidences(counts).sum(axis=0).reshape(v, v)
    return float(_alpha_from_coincidences(o, level))


def _fleiss_parts(counts: np.ndarray):
    m = counts.sum(axis=1)
    agree = ((counts * (counts - 1)).sum(axis=1)) / (m * (m - 1))
    return m, agree


def percent_agreement(counts: np.ndarray) -> float:
    """Mean over units of the share of agreeing rater pairs (units with two or more ratings)."""
    counts = _pairable(np.asarray(counts, dtype=float))
    if len(counts) == 0:
        return float("nan")
    return float(_fleiss_parts(counts)[1].mean())


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' κ (1971). With a varying number of ratings per unit, the category shares are
    pooled over all ratings and P̄ is the mean of the per-unit agreement (the usual extension);
    with a constant number it is exactly Fleiss' statistic."""
    counts = _pairable(np.asarray(counts, dtype=float))
    if len(counts) == 0:
        return float("nan")
    _, agree = _fleiss_parts(counts)
    p = counts.sum(axis=0) / counts.sum()
    pe = float((p**2).sum())
    return float("nan") if pe >= 1 else float((agree.mean() - pe) / (1 - pe))


def _percentile_ci(samples: np.ndarray) -> tuple[float, float]:
    samples = samples[np.isfinite(samples)]
    if samples.size < 10:
        return float("nan"), float("nan")
    tail = (1 - CI_LEVEL) / 2 * 100
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)


def _bootstrap_weights(n_units: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """How many times each unit is drawn in each resample (units drawn with replacement): the
    same distribution as a multinomial draw, but one bincount instead of `samples` multinomials."""
    draws = rng.integers(0, n_units, size=(samples, n_units)) + n_units * np.arange(samples)[:, None]
    return np.bincount(draws.ravel(), minlength=samples * n_units).reshape(samples, n_units).astype(float)


@dataclass(frozen=True)
class AgreementSummary:
    units: int
    ratings: int
    percent: Estimate
    fleiss: Estimate
    alpha_nominal: Estimate
    alpha_ordinal: Estimate | None

    def as_dict(self) -> dict:
        out = {
            "units": self.units,
            "ratings": self.ratings,
            "percent_agreement": self.percent.as_dict(),
            "fleiss_kappa": self.fleiss.as_dict(),
            "alpha_nominal": self.alpha_nominal.as_dict(),
        }
        if self.alpha_ordinal is not None:
            out["alpha_ordinal"] = self.alpha_ordinal.as_dict()
        return out


def agreement_summary(
    nominal: np.ndarray,
    ordinal: np.ndarray | None = None,
    *,
    samples: int = 200,
    seed: int = 0,
) -> AgreementSummary:
    """Every pooled statistic with a 95% percentile bootstrap interval over units.

    `nominal` and `ordinal` are units x values count matrices over the same units (rows align);
    ordinal rows with fewer than two ratings are simply not pairable."""
    nominal = np.asarray(nominal, dtype=float)
    # Ordinal values are a subset of the nominal ones (both-bad has no place on the strength
    # scale), so a unit pairable on the ordinal scale is pairable on the nominal one.
    keep = nominal.sum(axis=1) >= 2
    nominal = nominal[keep]
    if ordinal is not None:
        ordinal = np.asarray(ordinal, dtype=float)[keep]
    units = len(nominal)
    ratings = int(nominal.sum())
    nan = Estimate(None, None, None)
    if units == 0:
        return AgreementSummary(0, ratings, nan, nan, nan, nan if ordinal is not None else None)
    m, agree = _fleiss_parts(nominal)
    contribs = {}
    for name, counts, level in (("nominal", nominal, "nominal"), ("ordinal", ordinal, "ordinal")):
        if counts is not None and (counts.sum(axis=1) >= 2).any():
            ok = counts.sum(axis=1) >= 2
            contribs[name] = (ok, _unit_coincidences(counts[ok]), counts.shape[1], level)

    # Resamples in chunks: the weights are samples x units, which must not grow without bound.
    rng = np.random.default_rng(seed)
    boots: dict[str, list[np.ndarray]] = {"percent": [], "fleiss": [], "nominal": [], "ordinal": []}
    chunk = max(1, min(samples, BOOTSTRAP_CELLS // max(units, 1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        for done in range(0, samples, chunk):
            w = _bootstrap_weights(units, min(chunk, samples - done), rng)
            pa = (w @ agree) / w.sum(axis=1)
            share = (w @ nominal) / (w @ m)[:, None]
            pe = (share**2).sum(axis=1)
            boots["percent"].append(pa)
            boots["fleiss"].append((pa - pe) / (1 - pe))
            for name, (ok, contrib, v, level) in contribs.items():
                boots[name].append(_alpha_from_coincidences((w[:, ok] @ contrib).reshape(-1, v, v), level))

        def estimate(point: float, name: str) -> Estimate:
            return Estimate(point, *_percentile_ci(np.concatenate(boots[name])))

        def alpha(name: str) -> Estimate:
            if name not in contribs:
                return nan
            _, contrib, v, level = contribs[name]
            return estimate(float(_alpha_from_coincidences(contrib.sum(axis=0).reshape(v, v), level)), name)

        return AgreementSummary(
            units=units,
            ratings=ratings,
            percent=estimate(percent_agreement(nominal), "percent"),
            fleiss=estimate(fleiss_kappa(nominal), "fleiss"),
            alpha_nominal=alpha("nominal"),
            alpha_ordinal=alpha("ordinal") if ordinal is not None else None,
        )


@dataclass(frozen=True)
class PairwiseKappa:
    """Cohen's κ for every pair of annotators: square matrices indexed like the annotator list.
    `n` counts shared units; κ is NaN where fewer than `min_shared` or where it is undefined
    (both annotators used one and the same category throughout)."""

    kappa: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray


def cohen_kappa_matrix(
    unit: np.ndarray, rater: np.ndarray, value: np.ndarray, n_raters: int, n_values: int, *, min_shared: int = 5
) -> PairwiseKappa:
    """Cohen's κ between every pair of raters from long-form data (one rating per rater and unit).

    The interval is the large-sample one (Fleiss, Cohen and Everitt 1969) that statsmodels'
    `cohens_kappa` reports: bootstrapping every one of up to ~20,000 pairs is too slow for a
    dashboard, whereas the pooled statistics above do use the bootstrap."""
    keep = value >= 0
    unit, rater, value = unit[keep], rater[keep], value[keep]
    _, dense = np.unique(unit, return_inverse=True)
    n_units = int(dense.max()) + 1 if dense.size else 0
    onehot = np.zeros((n_raters * n_values, n_units), dtype=np.float32)
    onehot[rater * n_values + value, dense] = 1.0
    # tables[a, c, b, d] = units where rater a said c and rater b said d.
    tables = (onehot @ onehot.T).reshape(n_raters, n_values, n_raters, n_values).transpose(0, 2, 1, 3)
    tables = tables.astype(float)
    nobs = tables.sum(axis=(2, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        probs = tables / nobs[..., None, None]
        row = probs.sum(axis=3)
        col = probs.sum(axis=2)
        diag = np.diagonal(probs, axis1=2, axis2=3)
        po = diag.sum(axis=-1)
        pe = (row * col).sum(axis=-1)
        kappa = (po - pe) / (1 - pe)
        term_a = (diag * (1 - (row + col) * (1 - kappa)[..., None]) ** 2).sum(axis=-1)
        # Σ_{i≠j} p_ij (p_.i + p_j.)², as in Fleiss, Cohen and Everitt (1969).
        off = probs * (col[..., :, None] + row[..., None, :]) ** 2
        idx = np.arange(n_values)
        off[..., idx, idx] = 0
        term_b = (1 - kappa) ** 2 * off.sum(axis=(-2, -1))
        term_c = (kappa - pe * (1 - kappa)) ** 2
        var = (term_a + term_b - term_c) / (1 - pe) ** 2 / nobs
        se = np.sqrt(np.clip(var, 0, None))
    z = 1.959963984540054
    bad = (nobs < min_shared) | ~np.isfinite(kappa)
    np.fill_diagonal(bad, True)
    kappa = np.where(bad, np.nan, kappa)
    return PairwiseKappa(kappa=kappa, low=np.where(bad, np.nan, kappa - z * se), high=np.where(bad, np.nan, kappa + z * se), n=nobs.astype(int))


def unit_disagreement(counts: np.ndarray) -> np.ndarray:
    """1 - the share of agreeing rater pairs, per unit (NaN for units with fewer than 2 ratings)."""
    counts = np.asarray(counts, dtype=float)
    m = counts.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        agree = (counts * (counts - 1)).sum(axis=1) / (m * (m - 1))
    return np.where(m >= 2, 1.0 - agree, np.nan)
