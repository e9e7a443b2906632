"""Rater bias detectors: length, position, confidence (assertiveness), formatting and speed.
Pure numpy/scipy over long-form judgments, no Django.

Each preference-for-a-feature detector (longer, more assertive, list-formatted) compares an
annotator with two references on exactly the judgments they made:
- the pool, item by item: on each item, the share of the *other* annotators' decisive choices
  that went to the feature's side. A one-sided z-test of the annotator's count against the sum of
  those per-item rates (a Poisson-binomial null) says whether the excess is chance;
- the experts, on anchors: the expert answer on the same anchors, with an exact McNemar test on
  the discordant anchors.
A flag needs enough judgments (`min_n`), an excess of at least `margin` and p below `alpha`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import stats

A, B, TIE, BOTH_BAD = 0, 1, 2, 3
NO_EXPERT = -1
LEXICON_DIR = Path(__file__).with_name("lexicon")


# --- text features ---------------------------------------------------------------------------

def _lexicon(name: str) -> list[str]:
    return [
        line.strip().lower()
        for line in (LEXICON_DIR / f"{name}.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]


@lru_cache(maxsize=None)
def _lexicon_pattern() -> re.Pattern:
    """One pass finds both: group 1 is a hedge, group 2 a booster. Every phrase of both lists is
    tried longest first at each position, so a booster phrase that contains a hedge word ("without
    any doubt") wins over the word ("doubt"), and a multi-word hedge ("not entirely sure") over
    the booster inside it ("sure")."""
    hedges, boosters = _lexicon("hedges"), _lexicon("boosters")
    tagged = sorted([(t, 1) for t in hedges] + [(t, 2) for t in boosters], key=lambda x: len(x[0]), reverse=True)
    parts = [f"(?P<{'h' if kind == 1 else 'b'}{i}>{_phrase(term)})" for i, (term, kind) in enumerate(tagged)]
    return re.compile(rf"(?<![\w'])(?:{'|'.join(parts)})(?![\w'])")


def _phrase(term: str) -> str:
    """A lexicon phrase as a pattern: words separated by any run of spaces."""
    return r"\s+".join(re.escape(word) for word in term.split())


# Negation: a booster in its scope becomes a hedge ("not certain", "hardly clear", "can't say for
# sure"); a doubt word in its scope becomes a booster ("there isn't any doubt", "without the
# slightest doubt"); other hedges stay hedges ("not likely" still withholds commitment). The scope
# is the five words before the term, inside its clause (NegEx's window and terminators).
NEGATORS = {"not", "no", "never", "without", "hardly", "barely", "scarcely", "neither", "nor", "cannot", "nothing",
            "nobody", "none"}
DOUBT_WORDS = {"doubt", "doubts", "doubtful", "uncertain", "unsure", "unclear", "question", "questionable"}
NEGATION_SCOPE = 5
_WORD = re.compile(r"[\w']+")
_CLAUSE_BREAK = re.compile(r"[,;:()]|\bbut\b|\bhowever\b")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def _negated(before: str) -> bool:
    # The scope ends at a clause boundary, as in NegEx: "no, it is clearly right" is not negated.
    clause = _CLAUSE_BREAK.split(before)[-1]
    words = _WORD.findall(clause)[-NEGATION_SCOPE:]
    # "not only ... but": emphasis, not negation.
    return any((w in NEGATORS or w.endswith("n't")) and not (w == "not" and words[i + 1:i + 2] == ["only"])
               for i, w in enumerate(words))


def sentence_markers(sentence: str) -> tuple[int, int]:
    """(hedges, boosters) of one sentence, with phrases matched longest first and negation applied."""
    text = sentence.lower().replace("\u2019", "'")
    hedges = boosters = 0
    for match in _lexicon_pattern().finditer(text):
        kind = match.lastgroup[0]
        term = match.group(0)
        if _negated(text[:match.start()]):
            if kind == "b":
                kind = "h"
            elif term in DOUBT_WORDS:
                kind = "b"
        if kind == "h":
            hedges += 1
        else:
            boosters += 1
    return hedges, boosters


_LIST_LINE = re.compile(r"^\s*(?:[-*+\u2022]|\d{1,3}[.)])\s+\S", re.MULTILINE)


@dataclass(frozen=True)
class TextFeatures:
    chars: int
    words: int
    hedges: int
    boosters: int
    is_list: bool

    @property
    def assertiveness(self) -> float:
        """Boosters minus hedges per 100 words."""
        return 100.0 * (self.boosters - self.hedges) / max(self.words, 1)


def text_features(text: str) -> TextFeatures:
    """Counts of hedges and boosters, scored sentence by sentence (negation never reaches across
    a sentence), and whether the text is a list."""
    hedges = boosters = 0
    for sentence in _SENTENCE_END.split(text):
        h, b = sentence_markers(sentence)
        hedges += h
        boosters += b
    return TextFeatures(
        chars=len(text),
        words=len(text.split()),
        hedges=hedges,
        boosters=boosters,
        is_list=len(_LIST_LINE.findall(text)) >= 2,
    )


# --- inputs and settings ---------------------------------------------------------------------

@dataclass
class Judgments:
    """Long-form judgments; `item` indexes the Items arrays, `annotator` is 0..n-1."""

    item: np.ndarray
    annotator: np.ndarray
    choice: np.ndarray  # A, B, TIE, BOTH_BAD (canonical: the item's response a / b)
    a_left: np.ndarray  # bool: response a was shown on the left
    time_ms: np.ndarray  # 0 = not reported
    side_known: np.ndarray | None = None  # bool; None: every side known (imported judgments may not say)

    def known_sides(self) -> np.ndarray:
        return np.ones(self.item.size, dtype=bool) if self.side_known is None else self.side_known.astype(bool)


@dataclass
class Items:
    len_a: np.ndarray
    len_b: np.ndarray
    assert_a: np.ndarray
    assert_b: np.ndarray
    list_a: np.ndarray
    list_b: np.ndarray
    read_chars: np.ndarray  # prompt + both responses
    expert: np.ndarray  # A, B, TIE, BOTH_BAD or NO_EXPERT


@dataclass(frozen=True)
class Thresholds:
    length_gap_chars: int = 30
    margin: float = 0.15
    position_margin: float = 0.10
    alpha: float = 0.01
    min_n: int = 20
    assertive_gap: float = 1.0
    reading_chars_per_second: float = 50.0
    fast_share: float = 0.20
    examples: int = 5


@dataclass
class Flag:
    kind: str
    title: str
    explanation: str
    evidence: dict
    examples: list[int] = field(default_factory=list)  # item indexes

    def as_dict(self, item_ids: np.ndarray | None = None) -> dict:
        examples = [int(item_ids[i]) for i in self.examples] if item_ids is not None else self.examples
        return {"kind": self.kind, "title": self.title, "explanation": self.explanation,
                "evidence": self.evidence, "examples": examples}


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _r(x) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


# --- generic feature preference --------------------------------------------------------------

@dataclass
class FeaturePreference:
    """Per annotator (arrays of length n_annotators)."""

    n: np.ndarray
    rate: np.ndarray
    pool_n: np.ndarray
    matched_rate: np.ndarray  # the annotator's rate on the judgments that have a pool reference
    pool_rate: np.ndarray  # the item-matched rate of the other annotators on those judgments
    pool_p: np.ndarray  # one-sided: annotator above pool
    expert_n: np.ndarray
    annotator_rate_on_anchors: np.ndarray
    expert_rate: np.ndarray
    expert_p: np.ndarray  # exact McNemar, one-sided
    examples: list[list[int]]


def feature_preference(judgments: Judgments, feature_side: np.ndarray, n_annotators: int, examples: int = 5,
                       expert: np.ndarray | None = None) -> FeaturePreference:
    """How often each annotator chose the side carrying a feature.

    `feature_side` is per item: A or B for the side with the feature, -1 where neither or both."""
    side = feature_side[judgments.item]
    mask = (side >= 0) & ((judgments.choice == A) | (judgments.choice == B))
    item = judgments.item[mask]
    who = judgments.annotator[mask]
    x = (judgments.choice[mask] == side[mask]).astype(float)
    count = lambda w: np.bincount(who, weights=w, minlength=n_annotators)  # noqa: E731

    n = count(np.ones_like(x))
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = count(x) / n
        n_items = int(feature_side.size)
        item_total = np.bincount(item, minlength=n_items)[item]
        item_hits = np.bincount(item, weights=x, minlength=n_items)[item]
        others = item_total - 1
        ref = (item_hits - x) / others
        comparable = others >= 1
        ref_c = np.where(comparable, ref, 0.0)
        pool_n = count(comparable.astype(float))
        hits_c = count(np.where(comparable, x, 0.0))
        expected = count(ref_c)
        variance = count(ref_c * (1 - ref_c))
        pool_rate = expected / pool_n
        matched_rate = hits_c / pool_n
        z = (hits_c - expected) / np.sqrt(variance)
        pool_p = np.where(variance > 0, stats.norm.sf(z), np.where(hits_c > expected, 0.0, 1.0))
        pool_p = np.where(pool_n > 0, pool_p, np.nan)

    expert_n = np.zeros(n_annotators)
    anchor_rate = np.full(n_annotators, np.nan)
    expert_rate = np.full(n_annotators, np.nan)
    expert_p = np.full(n_annotators, np.nan)
    if expert is not None:
        ex = expert[item]
        on_anchor = (ex == A) | (ex == B)
        e = (ex == side[mask]).astype(float)
        expert_n = count(on_anchor.astype(float))
        with np.errstate(divide="ignore", invalid="ignore"):
            anchor_rate = count(np.where(on_anchor, x, 0)) / expert_n
            expert_rate = count(np.where(on_anchor, e, 0)) / expert_n
        above = count(np.where(on_anchor, x * (1 - e), 0)).astype(int)
        below = count(np.where(on_anchor, e * (1 - x), 0)).astype(int)
        discordant = above + below
        expert_p = np.where(discordant > 0, stats.binom.sf(above - 1, np.maximum(discordant, 1), 0.5), 1.0)
        expert_p = np.where(expert_n > 0, expert_p, np.nan)

    # Examples: the annotator took the feature's side where the pool least did.
    example_lists: list[list[int]] = [[] for _ in range(n_annotators)]
    chosen = np.flatnonzero((x == 1) & comparable)
    order = chosen[np.lexsort((ref[chosen], who[chosen]))]
    starts = np.searchsorted(who[order], np.arange(n_annotators))
    ends = np.searchsorted(who[order], np.arange(n_annotators), side="right")
    for a in range(n_annotators):
        example_lists[a] = [int(i) for i in item[order[starts[a]:min(ends[a], starts[a] + examples)]]]
    return FeaturePreference(n, rate, pool_n, matched_rate, pool_rate, pool_p, expert_n, anchor_rate, expert_rate, expert_p,
                             example_lists)


def _preference_flag(pref: FeaturePreference, a: int, t: Thresholds, *, kind: str, title: str, what: str,
                     situation: str) -> tuple[dict, Flag | None]:
    evidence = {
        "n": int(pref.n[a]),
        "rate": _r(pref.rate[a]),
        "matched_rate": _r(pref.matched_rate[a]),
        "pool_rate": _r(pref.pool_rate[a]),
        "pool_n": int(pref.pool_n[a]),
        "pool_p": _r(pref.pool_p[a]),
        "anchors_n": int(pref.expert_n[a]),
        "rate_on_anchors": _r(pref.annotator_rate_on_anchors[a]),
        "expert_rate": _r(pref.expert_rate[a]),
        "expert_p": _r(pref.expert_p[a]),
    }
    reasons = []
    if (pref.pool_n[a] >= t.min_n and pref.matched_rate[a] - pref.pool_rate[a] >= t.margin
            and pref.pool_p[a] < t.alpha):
        reasons.append(
            f"chose {what} in {_pct(pref.matched_rate[a])} of {int(pref.pool_n[a])} {situation}; other annotators on the "
            f"same items chose it {_pct(pref.pool_rate[a])} of the time ({_p(pref.pool_p[a])})"
        )
    if (pref.expert_n[a] >= t.min_n and pref.annotator_rate_on_anchors[a] - pref.expert_rate[a] >= t.margin
            and pref.expert_p[a] < t.alpha):
        reasons.append(
            f"on {int(pref.expert_n[a])} anchors chose {what} {_pct(pref.annotator_rate_on_anchors[a])} of the time "
            f"where the experts did {_pct(pref.expert_rate[a])} ({_p(pref.expert_p[a])})"
        )
    if not reasons:
        return evidence, None
    explanation = "This annotator " + "; and ".join(reasons) + "."
    return evidence, Flag(kind, title, explanation, evidence, pref.examples[a])


# --- logistic regression for the length coefficient ------------------------------------------

@dataclass(frozen=True)
class LogitFit:
    coef: float
    se: float
    low: float
    high: float
    n: int


def logit_fit(X: np.ndarray, y: np.ndarray, iterations: int = 25) -> tuple[np.ndarray, np.ndarray] | None:
    """Maximum-likelihood logistic regression by Newton's method: (coefficients, standard errors),
    or None where the data are separated or a column is constant. A handful of parameters per
    annotator: a loop of small solves is far cheaper than fitting statsmodels' Logit (the tests'
    oracle) once per annotator."""
    n, k = X.shape
    if n <= k or len(np.unique(y)) < 2:
        return None
    beta = np.zeros(k)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(X @ beta)))
        hess = X.T @ (X * (p * (1 - p))[:, None])
        try:
            step = np.linalg.solve(hess, X.T @ (y - p))
        except np.linalg.LinAlgError:
            return None
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    p = 1 / (1 + np.exp(-(X @ beta)))
    hess = X.T @ (X * (p * (1 - p))[:, None])
    try:
        se = np.sqrt(np.diag(np.linalg.inv(hess)))
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(se)) or se.max() > 100 or np.abs(beta).max() > 50:  # separated: no finite estimate
        return None
    return beta, se


def logit_slope(x: np.ndarray, y: np.ndarray) -> LogitFit | None:
    """y ~ 1 + x, with a Wald 95% interval for the slope."""
    if len(y) < 3 or np.ptp(x) == 0:
        return None
    fit = logit_fit(np.column_stack([np.ones(len(x)), x]), y)
    if fit is None:
        return None
    beta, se = fit
    z = 1.959963984540054
    return LogitFit(float(beta[1]), float(se[1]), float(beta[1] - z * se[1]), float(beta[1] + z * se[1]), len(y))


# --- the detectors ---------------------------------------------------------------------------

def _side_with(flag_a: np.ndarray, flag_b: np.ndarray) -> np.ndarray:
    return np.where(flag_a & ~flag_b, A, np.where(flag_b & ~flag_a, B, -1))


def two_sided_binom_half(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Exact two-sided binomial test p-values against 1/2 (symmetric, so twice the smaller tail)."""
    k = np.asarray(k)
    n = np.asarray(n)
    low = stats.binom.cdf(k, n, 0.5)
    high = stats.binom.sf(k - 1, n, 0.5)
    return np.where(n > 0, np.minimum(1.0, 2 * np.minimum(low, high)), np.nan)


def detect(judgments: Judgments, items: Items, n_annotators: int, t: Thresholds = Thresholds()) -> list[dict]:
    """Every detector for every annotator: [{metrics..., "flags": [Flag, ...]}] by annotator index."""
    out: list[dict] = [{"flags": []} for _ in range(n_annotators)]
    choice, who = judgments.choice, judgments.annotator
    decisive = (choice == A) | (choice == B)
    has_expert = (items.expert == A) | (items.expert == B)
    expert = np.where(has_expert, items.expert, NO_EXPERT)

    # Length: the longer side where the gap exceeds the threshold.
    gap = items.len_b - items.len_a
    longer = np.where(gap > t.length_gap_chars, B, np.where(-gap > t.length_gap_chars, A, -1))
    length = feature_preference(judgments, longer, n_annotators, t.examples, expert)
    # Logistic coefficient of choosing b on tanh of the standardised length difference.
    sd = (float(np.std(gap)) if gap.size else 0.0) or 1.0
    xs = np.tanh(gap / sd)[judgments.item]
    ys = (choice == B).astype(float)

    # Confidence: the more assertive side, and wrong-but-assertive on anchors.
    assert_gap = items.assert_b - items.assert_a
    assertive = np.where(assert_gap >= t.assertive_gap, B, np.where(-assert_gap >= t.assertive_gap, A, -1))
    confidence = feature_preference(judgments, assertive, n_annotators, t.examples, expert)
    wrong_assertive_side = np.where(has_expert & (assertive >= 0) & (assertive != items.expert), assertive, -1)
    wrong_assertive = feature_preference(judgments, wrong_assertive_side, n_annotators, t.examples)

    # Formatting: the list-formatted side when exactly one is a list.
    listed = _side_with(items.list_a.astype(bool), items.list_b.astype(bool))
    formatting = feature_preference(judgments, listed, n_annotators, t.examples, expert)

    # Position: the left side among decisive choices.
    # Judgments whose side is unknown (imported without it) say nothing about position.
    sided = decisive & judgments.known_sides()
    chose_left = sided & ((choice == A) == judgments.a_left.astype(bool))
    left_n = np.bincount(who[sided], minlength=n_annotators)
    left_k = np.bincount(who[chose_left], minlength=n_annotators)
    left_p = two_sided_binom_half(left_k, left_n)

    # Speed: faster than reading both responses (and the prompt) at the set pace.
    reported = judgments.time_ms > 0
    needed_ms = 1000.0 * items.read_chars[judgments.item] / t.reading_chars_per_second
    too_fast = reported & (judgments.time_ms < needed_ms)
    pool_median = float(np.median(judgments.time_ms[reported])) if reported.any() else float("nan")

    # Features travel together (a list is often longer; a hedged answer may be longer), so a
    # confidence or formatting flag must also survive a regression that controls for length,
    # position and the other features: the controlled coefficient must be above zero at the
    # significance level (Wald, one-sided).
    sign = lambda side: np.where(side == B, 1.0, np.where(side == A, -1.0, 0.0))  # noqa: E731
    design = np.column_stack([
        np.ones(choice.size), xs, sign(longer)[judgments.item], sign(assertive)[judgments.item],
        sign(listed)[judgments.item],
        np.where(judgments.known_sides(), np.where(judgments.a_left.astype(bool), -1.0, 1.0), 0.0),
    ])
    controlled_col = {"confidence": 3, "formatting": 4}
    z_crit = float(stats.norm.isf(t.alpha))

    order = np.argsort(who, kind="stable")
    bounds = np.searchsorted(who[order], np.arange(n_annotators + 1))
    for a in range(n_annotators):
        rows = order[bounds[a]:bounds[a + 1]]
        row = out[a]
        row["judgments"] = int(rows.size)

        evidence, flag = _preference_flag(length, a, t, kind="length", title="Prefers longer responses",
                                          what="the longer response",
                                          situation=f"comparisons where the lengths differ by more than {t.length_gap_chars} characters")
        d = rows[decisive[rows]]
        # Columns constant for this annotator (no lists anywhere, say) carry nothing to control for.
        varying = [0] + [c for c in range(1, design.shape[1]) if d.size and np.ptp(design[d, c]) > 0]
        controlled = logit_fit(design[np.ix_(d, varying)], ys[d]) if d.size else None

        def survives(kind: str, evidence: dict) -> bool:
            col = controlled_col[kind]
            if col not in varying:
                return False  # the feature never differs: nothing to prefer
            if controlled is None:
                evidence["controlled_coef"] = None
                return True  # separated data (a perfectly consistent preference): the rate test stands alone
            k = varying.index(col)
            z = controlled[0][k] / controlled[1][k]
            evidence["controlled_coef"] = _r(controlled[0][k])
            evidence["controlled_z"] = _r(z)
            return bool(z > z_crit)

        fit = logit_slope(xs[d], ys[d])
        evidence["logit_coef"] = _r(fit.coef) if fit else None
        evidence["logit_low"] = _r(fit.low) if fit else None
        evidence["logit_high"] = _r(fit.high) if fit else None
        row["length"] = evidence
        if flag:
            row["flags"].append(flag)

        evidence, flag = _preference_flag(confidence, a, t, kind="confidence", title="Prefers assertive responses",
                                          what="the more assertive response",
                                          situation="comparisons where one response hedges noticeably less")
        evidence["wrong_assertive_n"] = int(wrong_assertive.n[a])
        evidence["wrong_assertive_rate"] = _r(wrong_assertive.rate[a])
        evidence["wrong_assertive_pool_rate"] = _r(wrong_assertive.pool_rate[a])
        evidence["wrong_assertive_p"] = _r(wrong_assertive.pool_p[a])
        wa = (wrong_assertive.pool_n[a] >= t.min_n
              and wrong_assertive.matched_rate[a] - wrong_assertive.pool_rate[a] >= t.margin
              and wrong_assertive.pool_p[a] < t.alpha)
        if wa:
            sentence = (f"On {int(wrong_assertive.pool_n[a])} anchors where the wrong answer is the more assertive one, "
                        f"picked it {_pct(wrong_assertive.matched_rate[a])} of the time against the pool's "
                        f"{_pct(wrong_assertive.pool_rate[a])} ({_p(wrong_assertive.pool_p[a])}).")
            if flag:
                flag.explanation += " " + sentence
            else:
                flag = Flag("confidence", "Prefers assertive responses", "This annotator: " + sentence, evidence,
                            wrong_assertive.examples[a])
        row["confidence"] = evidence
        if flag and survives("confidence", evidence):
            row["flags"].append(flag)

        evidence, flag = _preference_flag(formatting, a, t, kind="formatting", title="Prefers list formatting",
                                          what="the list-formatted response",
                                          situation="comparisons where exactly one response is a list")
        row["formatting"] = evidence
        if flag and survives("formatting", evidence):
            row["flags"].append(flag)

        n_dec = int(left_n[a])
        left_rate = left_k[a] / n_dec if n_dec else float("nan")
        row["position"] = {"n": n_dec, "left_rate": _r(left_rate), "p": _r(left_p[a])}
        if n_dec >= t.min_n and abs(left_rate - 0.5) >= t.position_margin and left_p[a] < t.alpha:
            side = "left" if left_rate > 0.5 else "right"
            picks = d[chose_left[d] == (side == "left")]
            row["flags"].append(Flag(
                "position", f"Prefers the {side} response",
                f"This annotator chose the {side} response in {_pct(max(left_rate, 1 - left_rate))} of {n_dec} "
                f"decisive judgments. Sides are randomised, so about 50% is expected ({_p(left_p[a])}, binomial test).",
                row["position"], [int(i) for i in judgments.item[picks[: t.examples]]],
            ))

        r = rows[reported[rows]]
        median = float(np.median(judgments.time_ms[r])) if r.size else float("nan")
        fast = rows[too_fast[rows]]
        share = fast.size / r.size if r.size else float("nan")
        row["speed"] = {"n": int(r.size), "median_ms": _r(median), "pool_median_ms": _r(pool_median),
                        "too_fast": int(fast.size), "too_fast_share": _r(share)}
        if r.size >= t.min_n and share >= t.fast_share:
            fastest = fast[np.argsort(judgments.time_ms[fast] / needed_ms[fast])][: t.examples]
            row["flags"].append(Flag(
                "speed", "Too fast to have read both responses",
                f"{_pct(share)} of this annotator's {r.size} timed judgments ({fast.size}) took less time than reading "
                f"the prompt and both responses at {t.reading_chars_per_second:.0f} characters a second. Their median "
                f"is {median / 1000:.1f} s against the pool's {pool_median / 1000:.1f} s.",
                row["speed"], [int(i) for i in judgments.item[fastest]],
            ))
    return out
