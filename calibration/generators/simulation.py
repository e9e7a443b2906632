"""A simulated annotator pool on generated comparisons whose true answer is known.

Used by the bias-detector tests (does each biased annotator get flagged for its bias, and no honest
one?) and by bench/analytics.py to fill PostgreSQL with a million judgments. The response texts are
real strings, so the text features (length, hedging, lists) are measured the way production
measures them. Every feature is drawn independently of the truth: an honest annotator has no reason
to prefer the longer, the more assertive or the list-formatted side.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bias import A, B, BOTH_BAD, TIE, text_features

KINDS = ("expert", "noisy", "length", "position", "assertive", "formatting", "fast")
# The flag each kind should raise (honest kinds raise none).
EXPECTED_FLAG = {"length": "length", "position": "position", "assertive": "confidence",
                 "formatting": "formatting", "fast": "speed"}
DOMAINS = ("coding", "math", "medical", "legal", "general")
DIFFICULTIES = ("easy", "medium", "hard")
STRENGTHS = ("slight", "clear", "strong")

_SENTENCES = (
    "The function returns the sum of the two arguments.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "The contract can be ended with thirty days of written notice.",
    "Take the medicine with food to avoid an upset stomach.",
    "Sort the list first, then remove the duplicates in one pass.",
    "Interest is charged monthly on the outstanding balance.",
    "The capital of Australia is Canberra, not Sydney.",
    "A binary search halves the interval at every step.",
)
_HEDGED = ("It might be that {s}", "Perhaps {s}", "I think {s}", "{s} This may depend on the case.")
_BOOSTED = ("Clearly, {s}", "Definitely: {s}", "Without doubt, {s}", "{s} This is certainly true.")


def _lower_first(s: str) -> str:
    return s[0].lower() + s[1:]


def response_text(rng: np.random.Generator, sentences: int, tone: str, as_list: bool,
                  phrasing: tuple[tuple[str, ...], tuple[str, ...]] | None = None) -> str:
    picked = [_SENTENCES[i] for i in rng.integers(0, len(_SENTENCES), sentences)]
    if tone != "plain":
        hedged, boosted = phrasing or (_HEDGED, _BOOSTED)
        templates = hedged if tone == "hedged" else boosted
        out = []
        for sentence in picked:
            template = templates[rng.integers(0, len(templates))]
            out.append(template.format(s=sentence if template.startswith("{s}") else _lower_first(sentence)))
        picked = out
    if as_list:
        return "\n".join(f"- {s}" for s in picked)
    return " ".join(picked)


@dataclass
class Simulation:
    prompts: list[str]
    text_a: list[str]
    text_b: list[str]
    domain: np.ndarray  # index into DOMAINS
    difficulty: np.ndarray  # index into DIFFICULTIES
    truth: np.ndarray  # A or B
    is_anchor: np.ndarray  # bool: the expert answer (= truth) is known
    kinds: list[str]  # per annotator
    item: np.ndarray  # per judgment
    annotator: np.ndarray
    choice: np.ndarray
    strength: np.ndarray  # index into STRENGTHS, -1 for tie / both bad
    a_left: np.ndarray
    time_ms: np.ndarray
    day: np.ndarray  # days since the start


def _item_texts(rng: np.random.Generator, n_items: int, phrasing=None):
    # Lengths, tone and layout of each side are independent of each other and of the truth.
    sentences = rng.integers(1, 7, size=(n_items, 2))
    tones = rng.choice(np.array(["plain", "hedged", "boosted"]), size=(n_items, 2), p=[0.5, 0.25, 0.25])
    lists = rng.random((n_items, 2)) < 0.25
    a = [response_text(rng, int(sentences[i, 0]), str(tones[i, 0]), bool(lists[i, 0]), phrasing) for i in range(n_items)]
    b = [response_text(rng, int(sentences[i, 1]), str(tones[i, 1]), bool(lists[i, 1]), phrasing) for i in range(n_items)]
    written = np.select([tones == "hedged", tones == "boosted"], [-1, 1], 0)
    return a, b, written


def simulate(*, kinds: list[str], n_items: int, per_item: int, anchor_share: float = 0.15, days: int = 28,
             seed: int = 0, phrasing: tuple[tuple[str, ...], tuple[str, ...]] | None = None,
             plant_by_written_tone: bool = False) -> Simulation:
    """Each item is judged by `per_item` distinct annotators drawn at random.

    `phrasing`: (hedged templates, boosted templates) instead of the built-in ones, each with a
    "{s}" for the sentence. `plant_by_written_tone`: assertive raters prefer the side *written*
    boosted (or the less hedged one) rather than the side our lexicon measures as more assertive,
    which is how a pool we did not make behaves: the detector then has to read the phrasing."""
    rng = np.random.default_rng(seed)
    n_annotators = len(kinds)
    if per_item > n_annotators:
        raise ValueError("per_item cannot exceed the number of annotators")
    text_a, text_b, written = _item_texts(rng, n_items, phrasing)
    prompts = [f"Question {i}: which answer is better?" for i in range(n_items)]
    truth = rng.integers(0, 2, n_items)
    is_anchor = rng.random(n_items) < anchor_share

    # Random annotators per item without replacement: argsort of uniform noise, first per_item.
    chosen = np.argsort(rng.random((n_items, n_annotators)), axis=1)[:, :per_item]
    item = np.repeat(np.arange(n_items), per_item)
    annotator = chosen.reshape(-1)
    m = item.size
    kind = np.array(kinds)[annotator]
    a_left = rng.random(m) < 0.5

    fa = [text_features(t) for t in text_a]
    fb = [text_features(t) for t in text_b]
    len_a = np.array([f.chars for f in fa])
    len_b = np.array([f.chars for f in fb])
    as_a = np.array([f.assertiveness for f in fa])
    as_b = np.array([f.assertiveness for f in fb])
    li_a = np.array([f.is_list for f in fa])
    li_b = np.array([f.is_list for f in fb])
    read_chars = len_a + len_b + 40

    t = truth[item]
    # "spammer" (not in KINDS: no bias flag is expected of it) clicks at random.
    accuracy = np.select([kind == "expert", kind == "noisy", kind == "fast", kind == "spammer"], [0.92, 0.65, 0.75, 0.5], 0.85)
    choice = np.where(rng.random(m) < accuracy, t, 1 - t)

    def prefer(mask: np.ndarray, side: np.ndarray, p: float) -> None:
        go = mask & (side >= 0) & (rng.random(m) < p)
        choice[go] = side[go]

    gap = (len_b - len_a)[item]
    prefer(kind == "length", np.where(gap > 30, B, np.where(gap < -30, A, -1)), 0.85)
    prefer(kind == "position", np.where(a_left, A, B), 0.8)
    ag = ((written[:, 1] - written[:, 0]) if plant_by_written_tone else (as_b - as_a))[item]
    prefer(kind == "assertive", np.where(ag >= 1, B, np.where(ag <= -1, A, -1)), 0.85)
    lb, la = li_b[item], li_a[item]
    prefer(kind == "formatting", np.where(lb & ~la, B, np.where(la & ~lb, A, -1)), 0.85)
    # A few ties and both-bads from everyone.
    other = rng.random(m)
    choice = np.where(other < 0.03, TIE, np.where(other < 0.05, BOTH_BAD, choice))
    strength = np.where(choice <= B, rng.integers(0, 3, m), -1)

    reading = 1000.0 * read_chars[item] / 20.0 * rng.lognormal(0.0, 0.3, m)
    time_ms = np.where(kind == "fast", rng.uniform(800, 2500, m), reading).astype(int)
    return Simulation(
        prompts=prompts, text_a=text_a, text_b=text_b,
        domain=rng.integers(0, len(DOMAINS), n_items), difficulty=rng.choice(3, n_items, p=[0.4, 0.4, 0.2]),
        truth=truth, is_anchor=is_anchor, kinds=list(kinds),
        item=item, annotator=annotator, choice=choice.astype(np.int8), strength=strength.astype(np.int8),
        a_left=a_left, time_ms=time_ms, day=rng.integers(0, days, m),
    )
