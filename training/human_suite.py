"""The behavioural suite judged by people, as numbers: pure functions (no Django).

An answer's verdict from one person is `fail` if any check failed, `pass` if every applicable
check passed, `na` if none applied (annotation.models.rubric_verdict). With several people, the
answer passes when more of them passed it than failed it and fails in the opposite case; it is
not applicable when every one of them found no check that applied (counted beside the rate, and
watched: a checkpoint whose answers the rubric fits less often is reported), and undecided on a
split. Only passes and fails enter the rates.

A checkpoint is compared with the baseline on the same prompts, judged in the same send (a paired
design: both answered the same suite prompts, and their answers were queued mixed together). Each
pass rate has a Wilson 95% interval over its decided answers; the paired difference counts the
prompts where exactly one of the two passed (b: only the checkpoint, c: only the baseline), and the
exact McNemar test (two-sided binomial on b of b + c at one half) says whether it is more than
chance. A dimension is *worse* when the checkpoint passes at least `WORSE_DROP` fewer of the paired
prompts and at least `MIN_LOST` more were lost than gained, and flagged when it is worse while the
training reward rose. The p-value is per cell, not corrected for the number of dimensions and
checkpoints on the page: it is a guide, and "worse" does not wait for it.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from calibration.stats import wilson_interval

WORSE_DROP = 0.1  # as training.suite.VERIFIER_DROP: one notion of "fell" for both suites
MIN_LOST = 2
SIGNIFICANCE = 0.05
REWARD_WINDOW = 3  # logged steps averaged at each end when asking whether reward rose


def answer_outcome(verdicts: Iterable[str]) -> str | None:
    """'pass' or 'fail' by majority of each person's verdict, 'na' when everyone found no check
    that applied, None on a split or with no answer yet."""
    values = list(verdicts)
    passes, fails = values.count("pass"), values.count("fail")
    if passes > fails:
        return "pass"
    if fails > passes:
        return "fail"
    if values and passes == fails == 0:
        return "na"
    return None


def check_outcomes(answers: Sequence[Sequence[str]], checks: int) -> list[str | None]:
    """Per check, the same majority over people's answers (na answers left out)."""
    return [answer_outcome(a[i] for a in answers if i < len(a)) for i in range(checks)]


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: P(X <= min(b, c)) doubled, X ~ Binomial(b + c, 1/2),
    capped at 1 (statsmodels' mcnemar(exact=True) is the oracle in the tests)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@dataclass
class Rate:
    decided: int  # answers that passed or failed
    passes: int
    undecided: int  # split between people, or not judged yet
    not_applicable: int = 0  # no check applied, by everyone's answer

    @property
    def rate(self) -> float | None:
        return self.passes / self.decided if self.decided else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.passes, self.decided) if self.decided else None

    @property
    def na_share(self) -> float | None:
        judged = self.decided + self.not_applicable
        return self.not_applicable / judged if judged else None


def rate_of(outcomes: Iterable[str | None]) -> Rate:
    values = list(outcomes)
    return Rate(decided=sum(v in ("pass", "fail") for v in values), passes=values.count("pass"),
                undecided=values.count(None), not_applicable=values.count("na"))


@dataclass
class Paired:
    pairs: int  # prompts decided for both
    only_checkpoint: int  # b
    only_baseline: int  # c

    @property
    def difference(self) -> float | None:
        return (self.only_checkpoint - self.only_baseline) / self.pairs if self.pairs else None

    @property
    def p_value(self) -> float:
        return mcnemar_exact(self.only_checkpoint, self.only_baseline)

    @property
    def worse(self) -> bool:
        """At least WORSE_DROP of the paired prompts lost, and at least MIN_LOST more lost than
        gained: one discordant pair in one is not a finding."""
        return (self.difference is not None and self.difference <= -WORSE_DROP
                and self.only_baseline - self.only_checkpoint >= MIN_LOST)

    @property
    def significant(self) -> bool:
        return self.pairs > 0 and self.p_value < SIGNIFICANCE


def paired(checkpoint: dict, baseline: dict) -> Paired:
    """checkpoint, baseline: prompt -> outcome ('pass', 'fail' or None)."""
    both = [p for p in checkpoint if checkpoint[p] in ("pass", "fail") and baseline.get(p) in ("pass", "fail")]
    b = sum(1 for p in both if checkpoint[p] == "pass" and baseline[p] == "fail")
    c = sum(1 for p in both if checkpoint[p] == "fail" and baseline[p] == "pass")
    return Paired(pairs=len(both), only_checkpoint=b, only_baseline=c)


def reward_change(points: Sequence[tuple[int, float]], step: int) -> float | None:
    """How much the training reward rose from the run's start to `step`: the mean of the last
    REWARD_WINDOW logged values up to `step` minus the mean of the first REWARD_WINDOW. None with
    fewer than two logged steps up to it."""
    values = [v for s, v in sorted(points) if s <= step and v is not None and math.isfinite(v)]
    if len(values) < 2:
        return None
    window = min(REWARD_WINDOW, len(values) // 2)
    return sum(values[-window:]) / window - sum(values[:window]) / window
