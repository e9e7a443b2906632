"""Rankings of 3-8 responses: the shown letters, parsing an annotator's order, and the pairs a
ranking implies. Pure: no Django.

An order is written best first with `>` between tiers and `=` inside a tie: "C>A=D>B" says C is
best, A and D tie, B is last. Letters are the positions the annotator saw (A = top of the list as
shown), never response ids, so nothing in the page hints at where a response came from.
"""
from __future__ import annotations

import string
from collections.abc import Sequence
from itertools import combinations

LETTERS = string.ascii_uppercase


class RankingError(ValueError):
    pass


def letters(n: int) -> list[str]:
    return list(LETTERS[:n])


def parse_order(order: str, *, n: int) -> list[list[int]]:
    """Tiers of shown positions (0-based), best first. Every position exactly once."""
    text = (order or "").replace(" ", "").upper()
    if not text:
        raise RankingError("Put the responses in order before submitting.")
    valid = letters(n)
    tiers: list[list[int]] = []
    seen: set[str] = set()
    for raw_tier in text.split(">"):
        if not raw_tier:
            raise RankingError("Each '>' must have a response on both sides.")
        tier = []
        for letter in raw_tier.split("="):
            if letter not in valid:
                raise RankingError(f"Unknown response '{letter}': use {', '.join(valid)}.")
            if letter in seen:
                raise RankingError(f"Response {letter} appears twice.")
            seen.add(letter)
            tier.append(valid.index(letter))
        tiers.append(tier)
    missing = [letter for letter in valid if letter not in seen]
    if missing:
        raise RankingError(f"Rank every response: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing.")
    if len(tiers) == 1:
        raise RankingError("All responses tie: say which are better, or skip the item.")
    return tiers


def format_order(tiers: Sequence[Sequence[int]]) -> str:
    """The inverse of parse_order."""
    return ">".join("=".join(LETTERS[i] for i in tier) for tier in tiers)


def ranks_of(tiers: Sequence[Sequence[int]]) -> dict[int, int]:
    """{member: rank}, 1 = best; tied members share a rank (dense ranks)."""
    return {member: position + 1 for position, tier in enumerate(tiers) for member in tier}


def scores_of(tiers: Sequence[Sequence[int]]) -> dict[int, float]:
    """A score in [0, 1] per member: the share of the others it beats, a tie counting half
    (1 = beats all, 0 = beaten by all). Comparable across rankings of different length."""
    ranks = ranks_of(tiers)
    n = len(ranks)
    if n < 2:
        return {m: 1.0 for m in ranks}
    return {
        m: sum(1.0 if r < other else 0.5 if r == other else 0.0 for o, other in ranks.items() if o != m) / (n - 1)
        for m, r in ranks.items()
    }


# The rank gap of a pair says how clear the preference is, in the pairwise strength scale.
GAP_STRENGTH = {1: "slight", 2: "clear"}


def expand_pairs(tiers: Sequence[Sequence[int]]) -> list[tuple[int, int, str]]:
    """(better, worse, strength) for every pair of members in different tiers: K(K-1)/2 pairs
    minus the tied ones. Strength grows with the rank gap: 1 slight, 2 clear, 3+ strong."""
    ranks = ranks_of(tiers)
    pairs = []
    for x, y in combinations(sorted(ranks, key=lambda m: (ranks[m], m)), 2):
        gap = ranks[y] - ranks[x]
        if gap > 0:
            pairs.append((x, y, GAP_STRENGTH.get(gap, "strong")))
    return pairs


def mean_ranking(rankings: Sequence[dict[int, float]]) -> list[list[int]]:
    """Several annotators' scores ({member: score}) -> one ranking by mean score (equal means
    tie). Members missing from a ranking are averaged over the rankings that have them."""
    totals: dict[int, list[float]] = {}
    for scores in rankings:
        for member, score in scores.items():
            totals.setdefault(member, []).append(score)
    means = {m: round(sum(v) / len(v), 9) for m, v in totals.items()}
    tiers: list[list[int]] = []
    for value in sorted(set(means.values()), reverse=True):
        tiers.append(sorted(m for m, v in means.items() if v == value))
    return tiers
