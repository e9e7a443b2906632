"""The curation policy of a preference set and the pure steps of freezing one: which pairs
count, the held-out split, the content hash. No Django.

A policy is data (stored with the set, shown in its manifest): the same data frozen with the same
policy gives the same pairs in the same order, the same split and the same hash.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields

from .formats import STRENGTH_MARGIN, TAGS

AGGREGATIONS = ("none", "majority", "dawid_skene")
STANDINGS = ("calibrating", "active", "needs_retraining", "excluded")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class CurationPolicy:
    standings: tuple[str, ...] = field(
        default=("active",), metadata={"help": "Annotator standings whose work counts."})
    aggregation: str = field(
        default="dawid_skene", metadata={"help": "How several judgments of one comparison become one: "
                                         "none (a pair per judgment), majority or dawid_skene."})
    min_judgments: int = field(default=1, metadata={"help": "Fewest counted judgments an item needs."})
    min_confidence: float = field(
        default=0.0, metadata={"help": "Lowest aggregated confidence (vote share or posterior) kept."})
    tags: tuple[str, ...] = field(default=TAGS, metadata={"help": "Which pairs: comparison, rewrite, adversarial, ranking."})
    margins: tuple[tuple[str, float], ...] = field(
        default=tuple(sorted((k, round(v, 6)) for k, v in STRENGTH_MARGIN.items())),
        metadata={"help": "Strength -> TRL margin."})
    test_fraction: float = field(default=0.1, metadata={"help": "Share held out for testing, per domain and tag."})
    seed: int = field(default=0, metadata={"help": "Fixes the split."})

    def errors(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if not self.standings or set(self.standings) - set(STANDINGS):
            out["standings"] = f"Choose from {', '.join(STANDINGS)}."
        if self.aggregation not in AGGREGATIONS:
            out["aggregation"] = f"Use one of {', '.join(AGGREGATIONS)}."
        if self.min_judgments < 1:
            out["min_judgments"] = "At least 1."
        if not 0.0 <= self.min_confidence <= 1.0:
            out["min_confidence"] = "Between 0 and 1."
        if not self.tags or set(self.tags) - set(TAGS):
            out["tags"] = f"Choose from {', '.join(TAGS)}."
        margins = dict(self.margins)
        if set(margins) != set(STRENGTH_MARGIN) or any(not 0 <= m <= 10 for m in margins.values()):
            out["margins"] = "Give a margin from 0 to 10 for slight, clear and strong."
        if not 0.0 <= self.test_fraction < 1.0:
            out["test_fraction"] = "From 0 up to (not including) 1."
        return out

    def to_dict(self) -> dict:
        data = asdict(self)
        data["standings"], data["tags"] = sorted(self.standings), [t for t in TAGS if t in self.tags]
        data["margins"] = dict(self.margins)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> CurationPolicy:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown policy field(s): {', '.join(sorted(unknown))}")
        values = dict(data)
        for name in ("standings", "tags"):
            if name in values:
                values[name] = tuple(values[name])
        if "margins" in values:
            values["margins"] = tuple(sorted((str(k), float(v)) for k, v in dict(values["margins"]).items()))
        return cls(**values)

    def margin(self, strength: str) -> float:
        margins = dict(self.margins)
        return float(margins.get(strength, margins["clear"]))


@dataclass(frozen=True)
class Candidate:
    """One pair before freezing; `key` identifies it across versions (prompt:chosen:rejected)."""

    key: str
    prompt_id: int
    chosen_id: int
    rejected_id: int
    messages: list
    chosen: str
    rejected: str
    strength: str
    tag: str
    flaw_type: str
    domain: str
    difficulty: str
    confidence: float
    votes: int
    ground_truth: str | None = None
    rationales: tuple[str, ...] = ()
    unit: str = ""  # pairs of one unit share a split (a ranking's pairs); default: the key itself


def _unit(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def split_of(candidates: Sequence[Candidate], *, fraction: float, seed: int) -> dict[str, str]:
    """{key: train | test}: within every (domain, tag) stratum round(fraction * n) of its n units go
    to test, chosen by a seeded hash (independent of input order). A unit is one pair, or all the
    pairs of one ranking, which must not straddle the split."""
    strata: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for c in candidates:
        strata[(c.domain, c.tag)][c.unit or c.key].append(c.key)
    out: dict[str, str] = {}
    for units in strata.values():
        ranked = sorted(units, key=lambda u: _unit(seed, u))
        n_test = int(round(fraction * len(ranked)))
        for i, unit in enumerate(ranked):
            for key in units[unit]:
                out[key] = "test" if i < n_test else "train"
    return out


def canonical_line(row: dict) -> bytes:
    return (json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def content_hash(policy: CurationPolicy, rows: Iterable[dict]) -> str:
    """sha256 over the policy and every pair as canonical JSON, in set order."""
    digest = hashlib.sha256(canonical_line({"policy": policy.to_dict()}))
    for row in rows:
        digest.update(canonical_line(row))
    return digest.hexdigest()
