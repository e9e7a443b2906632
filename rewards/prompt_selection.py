"""Prompt selection for RL (Pre-PPO): keep the prompts the starting policy does worst on, judged by
the reward model within each domain, and optionally put math and code first. Pure: no Django.

Why z-scores per domain: reward-model scores are not comparable across domains (a model may score
every coding answer higher than every creative one), so "hardest" is decided inside each domain,
and each domain keeps the same fraction of its prompts: selection never wipes a domain out.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

CURRICULUM_FIRST = ("math", "code", "coding")


@dataclass
class Selection:
    kept: list[int]  # indexes into the candidate rows, in training order
    z_scores: list[float]
    per_domain: dict[str, dict] = field(default_factory=dict)  # domain -> {candidates, kept, mean_score, cutoff_z}
    fraction: float = 1.0
    curriculum: bool = False

    def report(self) -> dict:
        return {"fraction": self.fraction, "curriculum": self.curriculum, "candidates": len(self.z_scores),
                "kept": len(self.kept), "per_domain": self.per_domain,
                "order": "math and code first, then the rest" if self.curriculum else "as selected"}


def domain_z_scores(scores: Sequence[float], domains: Sequence[str]) -> np.ndarray:
    """Each score standardised within its domain (population std; a domain whose scores are all
    equal, or that has one prompt, gets 0)."""
    scores = np.asarray(scores, dtype=float)
    out = np.zeros_like(scores)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, domain in enumerate(domains):
        groups[domain].append(i)
    for index in groups.values():
        values = scores[index]
        std = values.std()
        out[index] = (values - values.mean()) / std if std > 0 else 0.0
    return out


def select_hardest(scores: Sequence[float], domains: Sequence[str], *, fraction: float,
                   curriculum: bool = False) -> Selection:
    """Keep ceil(fraction x n) of each domain's n prompts, those with the lowest z-score (ties:
    the earlier prompt), in their original order; with `curriculum`, math and code domains first."""
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    if len(scores) != len(domains):
        raise ValueError("one score per prompt")
    z = domain_z_scores(scores, domains)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, domain in enumerate(domains):
        groups[domain].append(i)
    kept: set[int] = set()
    per_domain = {}
    for domain, index in groups.items():
        keep = max(1, math.ceil(fraction * len(index)))
        hardest = sorted(index, key=lambda i: (z[i], i))[:keep]
        kept.update(hardest)
        per_domain[domain or "(none)"] = {
            "candidates": len(index), "kept": keep,
            "mean_score": float(np.mean([scores[i] for i in index])),
            "cutoff_z": float(max(z[i] for i in hardest)),
        }
    order = sorted(kept)
    if curriculum:
        order = curriculum_order(order, domains)
    return Selection(kept=order, z_scores=[float(v) for v in z], per_domain=per_domain, fraction=fraction,
                     curriculum=curriculum)


def curriculum_order(index: Sequence[int], domains: Sequence[str]) -> list[int]:
    """Math, then code, then everything else; stable inside each group."""
    def rank(i: int) -> int:
        domain = (domains[i] or "").lower()
        return 0 if domain == "math" else 1 if domain in ("code", "coding") else 2

    position = {i: p for p, i in enumerate(index)}
    return sorted(index, key=lambda i: (rank(i), position[i]))
