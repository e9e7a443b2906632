"""Statistics for calibration: pure functions over plain numbers (no Django), tested table-driven.

- Wilson score interval for an annotator's accuracy on anchors (Wilson 1927; Newcombe 1998,
  method 3). Written out rather than importing statsmodels because statsmodels is only a test
  dependency here (it is the oracle the tests check this against), and the formula is four lines.
- Bernoulli CUSUM on anchor errors (Reynolds & Stoumbos 1999): the log-likelihood-ratio CUSUM for
  a shift of the error rate from p0 (in control) to p1. Each error adds ln(p1/p0), each correct
  answer adds ln((1-p1)/(1-p0)) (< 0); the statistic is floored at 0 and alarms at h.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Wilson score interval for a binomial proportion; (0, 1) when n is 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError("need 0 <= successes <= n")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # Clamp rounding noise at the ends (k = 0 or k = n give exactly 0 or 1 in exact arithmetic).
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class CusumParams:
    p0: float  # error rate of an annotator in control
    p1: float  # error rate the chart is tuned to detect
    h: float  # alarm limit

    def __post_init__(self) -> None:
        if not 0 < self.p0 < self.p1 < 1:
            raise ValueError("need 0 < p0 < p1 < 1")
        if self.h <= 0:
            raise ValueError("h must be positive")

    @property
    def error_weight(self) -> float:
        return math.log(self.p1 / self.p0)

    @property
    def correct_weight(self) -> float:
        return math.log((1 - self.p1) / (1 - self.p0))


def cusum_step(statistic: float, error: bool, params: CusumParams) -> float:
    """The CUSUM after one more anchor answer."""
    weight = params.error_weight if error else params.correct_weight
    return max(0.0, statistic + weight)


@dataclass(frozen=True)
class CusumTrace:
    values: list[float]
    alarm_at: int | None  # index of the first answer at which the statistic reached h


def cusum_trace(errors: Iterable[bool], params: CusumParams, *, start: float = 0.0) -> CusumTrace:
    """The CUSUM path over a sequence of answers (True = error); stops counting alarms after the first."""
    values, alarm_at, statistic = [], None, start
    for index, error in enumerate(errors):
        statistic = cusum_step(statistic, error, params)
        values.append(statistic)
        if alarm_at is None and statistic >= params.h:
            alarm_at = index
    return CusumTrace(values=values, alarm_at=alarm_at)


def rolling_accuracy(outcomes: Sequence[bool], window: int) -> list[float]:
    """Accuracy over the last `window` outcomes (fewer at the start), one value per outcome."""
    if window < 1:
        raise ValueError("window must be at least 1")
    values, correct = [], 0
    for index, outcome in enumerate(outcomes):
        correct += bool(outcome)
        if index >= window:
            correct -= bool(outcomes[index - window])
        values.append(correct / min(index + 1, window))
    return values


def sparkline_points(values: Sequence[float], *, width: int = 120, height: int = 24) -> str:
    """SVG polyline points for values in [0, 1] (1 at the top)."""
    if not values:
        return ""
    if len(values) == 1:
        y = round(height * (1 - values[0]), 1)
        return f"0,{y} {width},{y}"
    step = width / (len(values) - 1)
    return " ".join(f"{round(i * step, 1)},{round(height * (1 - v), 1)}" for i, v in enumerate(values))
