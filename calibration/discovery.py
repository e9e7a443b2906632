"""Bias discovery: which side cues each annotator follows beyond what the other annotators saw in
the same items, over a broad set of cues, with effect sizes, intervals and false-discovery control
across every annotator x cue test (Benjamini-Hochberg). Pure numpy/scipy, no Django.

The reference for a judgment is the rest of the pool on the same item (leave-one-out: the share of
the *other* annotators' decisive choices that went to the cue's side), so an annotator is never
compared with a consensus their own vote is in. For annotator a and cue f, over a's decisive
judgments on items where exactly one side carries f (a per-judgment cue such as the side shown
on the left counts every judgment):

    d_i = x_i - r_i   (x_i = 1 when a chose the cue's side; r_i = the share of the other voters on
                       that item who did, at least two of them)
    effect = mean(d)  (how much more often than the pool, in share of judgments)
    a one-sample t-test of d against 0 (two-sided, n - 1 degrees of freedom) and its 95% interval.

The t-test uses the spread of the differences themselves. A model-based variance (r(1-r) summed,
even corrected for the reference's own noise) made any-discovery in 12% of pools with nothing
planted (60 simulated pools, BH at 5%); the t-test made it in 7% (tests/calibration/test_discovery.py
holds the bound).

Every (annotator, cue) with at least `min_n` comparable judgments is one test; Benjamini-Hochberg
over all of them (scipy.stats.false_discovery_control) holds the expected share of false
discoveries at `fdr`. A finding names the cue in words, with the items where the annotator took
the cue's side while the pool least did.

Cues here are computed from the texts (`response_cues`, `premise_agreement`), from the model that
wrote each response, from the judgment (position), and from custom cues a lead defines
(`custom_cue`: keywords or a regular expression).

When, not which side: time of day and time spent are not sides of a pair, so they are tested as
conditions (`time_conditions`): does an annotator disagree with the rest of the pool more under the
condition than otherwise? Per decisive judgment with at least two other decisive voters and no tie
among them, y = 1 when the annotator chose against the others' majority; effect = mean(y | in the
condition) - mean(y | not), Welch's t-test and its 95% interval, in the same Benjamini-Hochberg
family as the cue tests. Conditions: at night (22:00-06:00 in the project's time zone), rushed (the
annotator's own fastest quarter by time spent), and late in a session (after two hours of work
without a 30-minute break).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import regex
from scipy import stats

from .bias import A, B, Judgments, text_features

# ---------------------------------------------------------------- cues from a response's text

_HEADER = re.compile(r"^\s{0,3}#{1,6}\s+\S", re.MULTILINE)
_CODE_BLOCK = re.compile(r"```")
_EMOJI = re.compile("[\U0001F300-\U0001FAFF\U00002600-\U000027BF\U0001F000-\U0001F2FF\U0001F900-\U0001F9FF]")
_FLATTERY = re.compile(
    r"\b(great question|good question|excellent question|what a (great|wonderful|fantastic)|happy to help|"
    r"glad you asked|i'd be (happy|glad|delighted)|you're absolutely right|you are absolutely right|"
    r"thank you for|thanks for (asking|your)|i hope this helps|hope that helps|you've got this|brilliant)\b",
    re.IGNORECASE)
_REFUSAL = re.compile(
    r"\b(i can(no|')t (help|assist|provide|do that|comply)|i'm (not able|unable) to|i am (not able|unable) to|"
    r"i won't (help|provide)|as an ai\b|i must decline|i'm sorry, but i can)", re.IGNORECASE)
_SENTENCE = re.compile(r"[.!?]+(?:\s|$)")
_VOWELS = re.compile(r"[aeiouy]+")

# A belief the user states, and an answer that agrees or pushes back (the first sentence decides).
_PREMISE = re.compile(
    r"\b(i think|i believe|i'm (pretty |quite |fairly )?sure|i am (pretty |quite )?sure|i heard|i read that|"
    r"isn't it (true|right)|am i right|right\?|correct\?|everyone knows|obviously|my (teacher|doctor|friend) (said|says)|"
    r"i'm convinced|i am convinced|it's well known)\b", re.IGNORECASE)
_AGREE = re.compile(
    r"^\W*(yes\b|yeah\b|yep\b|you're (absolutely |completely |totally )?right|you are (absolutely |completely )?right|"
    r"that's (right|correct|true)|that is (right|correct|true)|correct\b|exactly\b|absolutely\b|indeed\b|great point|"
    r"good point|you've got it|spot on)", re.IGNORECASE)
_DISAGREE = re.compile(
    r"^\W*(no\b|nope\b|actually\b|not quite|not exactly|that's not|that is not|that's a (common )?misconception|"
    r"i'm afraid|unfortunately|contrary to|in fact\b|this is a (common )?myth|it's a myth|that isn't)", re.IGNORECASE)


def _syllables(word: str) -> int:
    return max(1, len(_VOWELS.findall(word.lower().rstrip("e"))) or 1)


def reading_grade(text: str) -> float:
    """Flesch-Kincaid grade level (0.39 words/sentence + 11.8 syllables/word - 15.59)."""
    words = re.findall(r"[A-Za-z]+", text)
    if not words:
        return 0.0
    sentences = max(1, len(_SENTENCE.findall(text)) or 1)
    syllables = sum(_syllables(w) for w in words)
    return 0.39 * len(words) / sentences + 11.8 * syllables / len(words) - 15.59


def response_cues(text: str) -> dict[str, float]:
    """Every per-response cue, as a number (counts, 0/1 flags, a grade)."""
    f = text_features(text)
    return {
        "length": float(f.chars),
        "assertiveness": f.assertiveness,
        "hedging": float(f.hedges),
        "list": float(f.is_list),
        "headers": float(len(_HEADER.findall(text))),
        "code": float(len(_CODE_BLOCK.findall(text)) >= 2),
        "emoji": float(len(_EMOJI.findall(text))),
        "flattery": float(len(_FLATTERY.findall(text))),
        "refusal": float(bool(_REFUSAL.search(text))),
        "reading_grade": reading_grade(text),
    }


def premise_agreement(prompt: str, response: str) -> int:
    """+1 the response agrees with a belief the user stated, -1 it pushes back, 0 no stated belief
    or neither."""
    if not _PREMISE.search(prompt or ""):
        return 0
    head = response.strip()[:200]
    if _DISAGREE.search(head):
        return -1
    if _AGREE.search(head):
        return 1
    return 0


# Cues in words, for flags and the dashboard; and how two sides' values make a side.
CUES = {
    # key: (title, kind, threshold) — kind "count": the side with more (gap >= threshold);
    # "flag": the side with it when the other has not; "scale": the higher side by >= threshold.
    "length": ("longer responses", "scale", 60.0),
    "assertiveness": ("more assertive responses", "scale", 1.0),
    "hedging": ("more hedged responses", "count", 1.0),
    "list": ("responses formatted as lists", "flag", 0.0),
    "headers": ("responses with headers", "flag", 0.0),
    "code": ("responses with code blocks", "flag", 0.0),
    "emoji": ("responses with emoji", "flag", 0.0),
    "flattery": ("flattering or effusively polite responses", "flag", 0.0),
    "refusal": ("responses that refuse", "flag", 0.0),
    "reading_grade": ("responses at a higher reading level", "scale", 3.0),
    "sycophancy": ("responses that agree with a belief the user stated", "scale", 1.0),
}


def side_of(va: np.ndarray, vb: np.ndarray, kind: str, threshold: float) -> np.ndarray:
    """Per item: A or B for the side that carries the cue, -1 where neither does (or both)."""
    if kind == "flag":
        a, b = va > 0, vb > 0
        return np.where(b & ~a, B, np.where(a & ~b, A, -1))
    gap = vb - va
    return np.where(gap >= max(threshold, 1e-9), B, np.where(-gap >= max(threshold, 1e-9), A, -1))


@dataclass
class Cue:
    key: str
    title: str  # in words: "responses with emoji"
    side: np.ndarray  # per item (or per judgment when per_judgment): A, B or -1
    per_judgment: bool = False
    custom: bool = False


def item_cues(texts_a: list[str], texts_b: list[str], prompts: list[str], models_a: list[str] | None = None,
              models_b: list[str] | None = None, min_model_items: int = 20) -> list[Cue]:
    """The text cues of every item, the sycophancy cue, and one cue per model name (the side a
    model wrote, on items where only one side is that model's)."""
    ca = [response_cues(t) for t in texts_a]
    cb = [response_cues(t) for t in texts_b]
    cues = []
    for key, (title, kind, threshold) in CUES.items():
        if key == "sycophancy":
            va = np.array([premise_agreement(p, t) for p, t in zip(prompts, texts_a)], dtype=float)
            vb = np.array([premise_agreement(p, t) for p, t in zip(prompts, texts_b)], dtype=float)
        else:
            va = np.array([c[key] for c in ca], dtype=float)
            vb = np.array([c[key] for c in cb], dtype=float)
        cues.append(Cue(key, title, side_of(va, vb, kind, threshold)))
    if models_a is not None and models_b is not None:
        ma, mb = np.array(models_a, dtype=object), np.array(models_b, dtype=object)
        names = sorted({m for m in (*models_a, *models_b) if m})
        for name in names:
            side = np.where((mb == name) & (ma != name), B, np.where((ma == name) & (mb != name), A, -1))
            if int((side >= 0).sum()) >= min_model_items:
                cues.append(Cue(f"model:{name}", f"responses written by {name}", side))
    return cues


MATCH_SECONDS = 0.05  # per text, for a lead's regular expression


def custom_cue(spec: dict, texts_a: list[str], texts_b: list[str]) -> tuple[Cue, int]:
    """A lead's cue ({name, keywords} or {name, pattern}): the side whose response matches, where
    the other does not. Keywords match whole words, any case; a pattern is run by the `regex`
    module with a time limit per text (a badly backtracking pattern cannot stall a worker: texts
    it times out on count as not matching). Returns the cue and the number of timeouts."""
    if spec.get("keywords"):
        # Not \b: a keyword may start or end with a non-word character (an emoji, "C++").
        source = r"(?<!\w)(?:" + "|".join(regex.escape(k.strip()) for k in spec["keywords"] if k.strip()) + r")(?!\w)"
    else:
        source = spec["pattern"]
    compiled = regex.compile(source, regex.IGNORECASE)
    timeouts = 0

    def matches(text: str) -> bool:
        nonlocal timeouts
        try:
            return compiled.search(text, timeout=MATCH_SECONDS) is not None
        except TimeoutError:
            timeouts += 1
            return False

    va = np.array([matches(t) for t in texts_a], dtype=float)
    vb = np.array([matches(t) for t in texts_b], dtype=float)
    title = f"responses matching the cue \u201c{spec['name']}\u201d"
    return Cue("custom:" + spec["name"], title, side_of(va, vb, "flag", 0.0), custom=True), timeouts


def position_cue(judgments: Judgments) -> Cue:
    """Per judgment: the side shown on the left (unknown sides carry no cue)."""
    side = np.where(judgments.a_left.astype(bool), A, B)
    return Cue("position", "the response shown on the left", np.where(judgments.known_sides(), side, -1), per_judgment=True)


# ---------------------------------------------------------------- the tests


@dataclass
class Finding:
    annotator: int
    cue: str
    title: str
    n: int
    rate: float  # how often they chose the cue's side
    expected: float  # how often the rest of the pool did, on the same items
    effect: float  # rate - expected
    low: float
    high: float
    p: float
    q: float  # Benjamini-Hochberg adjusted
    discovered: bool
    custom: bool = False
    examples: list[int] = field(default_factory=list)  # item indexes
    n_other: int = 0  # a condition's finding: judgments outside the condition

    @property
    def words(self) -> str:
        if self.cue.startswith("time:"):
            direction = "disagrees with the other annotators more" if self.effect > 0 else "agrees with them more"
            return (f"{direction} {self.title}: against the others' majority in {100 * self.rate:.0f}% of {self.n} "
                    f"such judgments, {100 * self.expected:.0f}% of {self.n_other} at other times (difference "
                    f"{100 * self.effect:+.0f} points, 95% interval {100 * self.low:+.0f} to {100 * self.high:+.0f}; "
                    f"q = {self.q:.2g}).")
        direction = "prefers" if self.effect > 0 else "avoids"
        return (f"{direction} {self.title}: chose them in {100 * self.rate:.0f}% of {self.n} comparisons where "
                f"only one side had them; the other annotators on the same items did in {100 * self.expected:.0f}% "
                f"(difference {100 * self.effect:+.0f} points, 95% interval {100 * self.low:+.0f} to "
                f"{100 * self.high:+.0f}; q = {self.q:.2g}).")


def cue_test(judgments: Judgments, cue: Cue, n_annotators: int, n_items: int, examples: int = 3,
             excluded: np.ndarray | None = None) -> list[dict]:
    """Per annotator: n, k, E, V and examples for one cue. The reference on an item is the other
    annotators' votes there, leaving out `excluded` annotators (those found to follow this cue:
    their votes would make everyone else look as if they avoided it)."""
    side = cue.side if cue.per_judgment else cue.side[judgments.item]
    decisive = (judgments.choice == A) | (judgments.choice == B)
    mask = decisive & (side >= 0)
    item, who = judgments.item[mask], judgments.annotator[mask]
    x = (judgments.choice[mask] == side[mask]).astype(float)
    counted = np.ones(item.size) if excluded is None else (~excluded[who]).astype(float)
    total = np.bincount(item, weights=counted, minlength=n_items)[item]
    hits = np.bincount(item, weights=x * counted, minlength=n_items)[item]
    # Leave the annotator's own vote out (when it was counted at all).
    total, hits = total - counted, hits - x * counted
    others = total
    # At least two others: the reference estimates the item's rate, and its own spread with it.
    ok = others >= 2
    m = np.maximum(others, 2)
    ref = np.where(ok, hits / m, 0.0)
    count = lambda w: np.bincount(who[ok], weights=w[ok], minlength=n_annotators)  # noqa: E731
    n = count(np.ones_like(x))
    k = count(x)
    e = count(ref)
    d2 = count((x - ref) ** 2)  # with k and e: the mean and spread of the differences x - r
    out = []
    chosen = np.flatnonzero(ok & (x == 1))
    order = chosen[np.lexsort((ref[chosen], who[chosen]))]
    starts = np.searchsorted(who[order], np.arange(n_annotators))
    ends = np.searchsorted(who[order], np.arange(n_annotators), side="right")
    for a in range(n_annotators):
        picks = [int(i) for i in item[order[starts[a]:min(ends[a], starts[a] + examples)]]]
        out.append({"n": int(n[a]), "k": float(k[a]), "e": float(e[a]), "d2": float(d2[a]), "examples": picks})
    return out


def _t(r: dict) -> tuple[float, float, float]:
    """(mean difference, its standard error, t) from the sums cue_test returns."""
    n = r["n"]
    if n < 2:
        return 0.0, 0.0, 0.0
    mean = (r["k"] - r["e"]) / n
    var = max((r["d2"] - n * mean * mean) / (n - 1), 0.0)
    se = math.sqrt(var / n)
    return mean, se, (mean / se if se > 0 else 0.0)


def _follows(r: dict, min_n: int) -> bool:
    """A strong follower for the reference's sake: enough judgments and a clear excess (t > 4)."""
    return r["n"] >= min_n and _t(r)[2] > 4.0


@dataclass
class Condition:
    key: str  # time:night, time:rushed, time:long_session
    title: str  # "at night (22:00-06:00 UTC)"
    inside: np.ndarray  # per judgment: under the condition
    known: np.ndarray  # per judgment: whether the condition can be told (a time spent of 0 cannot)


NIGHT_HOURS = (22, 6)
SESSION_BREAK_S, SESSION_LONG_S = 30 * 60, 2 * 3600


def time_conditions(judgments: Judgments, created: np.ndarray, *, utc_offset_s: int = 0,
                    zone: str = "UTC") -> list[Condition]:
    """Night, rushed and late-in-a-session, per judgment. `created`: epoch seconds; the hour of
    day is read at `utc_offset_s` (the project's time zone)."""
    created = np.asarray(created, dtype=np.int64)
    hour = ((created + utc_offset_s) // 3600) % 24
    night = (hour >= NIGHT_HOURS[0]) | (hour < NIGHT_HOURS[1])
    timed = judgments.time_ms > 0
    rushed = np.zeros(created.size, dtype=bool)
    late = np.zeros(created.size, dtype=bool)
    for a in np.unique(judgments.annotator):
        mine = np.flatnonzero(judgments.annotator == a)
        own = mine[timed[mine]]
        if own.size:
            rushed[own] = judgments.time_ms[own] <= np.quantile(judgments.time_ms[own], 0.25)
        order = mine[np.argsort(created[mine], kind="stable")]
        t = created[order]
        starts = np.r_[True, np.diff(t) > SESSION_BREAK_S]
        session_start = t[np.maximum.accumulate(np.where(starts, np.arange(t.size), 0))]
        late[order] = t - session_start >= SESSION_LONG_S
    every = np.ones(created.size, dtype=bool)
    return [
        Condition("time:night", f"at night ({NIGHT_HOURS[0]}:00–{NIGHT_HOURS[1]:02d}:00 {zone})", night, every),
        Condition("time:rushed", "when rushed (their own fastest quarter by time spent)", rushed, timed),
        Condition("time:long_session", "late in a long session (after two hours without a 30-minute break)",
                  late, every),
    ]


def against_majority(judgments: Judgments, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Per judgment: whether the decisive choice went against the majority of the *other* decisive
    voters on the item, and whether that is defined (at least two others, no tie among them)."""
    decisive = (judgments.choice == A) | (judgments.choice == B)
    is_b = (judgments.choice == B) & decisive
    votes = np.bincount(judgments.item, weights=decisive.astype(float), minlength=n_items)[judgments.item]
    for_b = np.bincount(judgments.item, weights=is_b.astype(float), minlength=n_items)[judgments.item]
    others = votes - decisive
    others_b = for_b - is_b
    others_a = others - others_b
    defined = decisive & (others >= 2) & (others_a != others_b)
    majority_b = others_b > others_a
    return defined & (is_b != majority_b), defined


def condition_tests(judgments: Judgments, conditions: list[Condition], n_annotators: int, n_items: int, *,
                    min_n: int = 30) -> list[Finding]:
    """Per (annotator, condition): disagreement with the others' majority inside against outside,
    Welch's t-test; at least min_n / 2 judgments on each side. Unadjusted (q = p until discover)."""
    against, defined = against_majority(judgments, n_items)
    y = against.astype(float)
    rows = []
    least = max(min_n // 2, 5)
    for condition in conditions:
        ok = defined & condition.known
        for a in range(n_annotators):
            mine = ok & (judgments.annotator == a)
            inside, outside = y[mine & condition.inside], y[mine & ~condition.inside]
            if inside.size < least or outside.size < least:
                continue
            if inside.var() + outside.var() <= 0:
                continue  # no spread on either side: nothing to test
            welch = stats.ttest_ind(inside, outside, equal_var=False)
            interval = welch.confidence_interval(0.95)
            rows.append(Finding(annotator=a, cue=condition.key, title=condition.title, n=int(inside.size),
                                rate=float(inside.mean()), expected=float(outside.mean()),
                                effect=float(inside.mean() - outside.mean()), low=float(interval.low),
                                high=float(interval.high), p=float(welch.pvalue), q=1.0, discovered=False,
                                n_other=int(outside.size)))
    return rows


def discover(judgments: Judgments, cues: list[Cue], n_annotators: int, n_items: int, *, min_n: int = 30,
             fdr: float = 0.05, min_effect: float = 0.05, examples: int = 3,
             conditions: list[Condition] | None = None) -> list[Finding]:
    """Every (annotator, cue) test with enough judgments, and every (annotator, condition) test
    (time_conditions), Benjamini-Hochberg over all of them; `discovered` marks the findings whose
    q is at most `fdr` and whose effect is at least `min_effect` (5 points: a real but negligible
    lean in a huge pool is not worth a flag)."""
    rows: list[Finding] = condition_tests(judgments, conditions or [], n_annotators, n_items, min_n=min_n)
    for cue in cues:
        # Twice more with the raters found to follow the cue left out of everyone else's reference
        # (a strong follower on an item otherwise makes the honest raters there look as if they
        # avoided the cue); their own test keeps the full reference of the others.
        excluded = np.zeros(n_annotators, dtype=bool)
        for _round in range(3):
            tests = cue_test(judgments, cue, n_annotators, n_items, examples, excluded)
            following = np.array([_follows(r, min_n) for r in tests])
            if (following == excluded).all():
                break
            excluded = following
        for a, r in enumerate(tests):
            if r["n"] < min_n:
                continue
            if excluded[a]:  # measured against everyone else (the other followers included)
                r = cue_test(judgments, cue, n_annotators, n_items, examples, excluded & (np.arange(n_annotators) != a))[a]
            effect, se, t = _t(r)
            if se <= 0:
                continue
            half = float(stats.t.isf(0.025, r["n"] - 1)) * se
            rows.append(Finding(
                annotator=a, cue=cue.key, title=cue.title, n=r["n"], rate=r["k"] / r["n"], expected=r["e"] / r["n"],
                effect=effect, low=effect - half, high=effect + half, p=float(2 * stats.t.sf(abs(t), r["n"] - 1)),
                q=1.0, discovered=False, custom=cue.custom, examples=r["examples"]))
    if rows:
        qs = stats.false_discovery_control([f.p for f in rows], method="bh")
        for finding, q in zip(rows, qs):
            finding.q = float(q)
            finding.discovered = bool(q <= fdr and abs(finding.effect) >= min_effect)
    return rows
