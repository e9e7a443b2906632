"""The curation policy of a preference set and the pure steps of freezing one: which pairs
count, the held-out split, the content hash. No Django.

A policy is data (stored with the set, shown in its manifest): the same data frozen with the same
policy gives the same pairs in the same order, the same split and the same hash.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields

from .formats import STRENGTH_MARGIN, TAGS

AGGREGATIONS = ("none", "majority", "dawid_skene", "bias_aware", "bradley_terry")
STANDINGS = ("calibrating", "active", "needs_retraining", "excluded")
# Bias flags whose judgments a policy can leave out where the bias applies (rewards/services/sets.py).
JUDGE_LABELS = ("exclude", "tiebreak", "include")
BIAS_DROPS = ("length", "position", "confidence", "formatting", "speed", "sycophancy")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class CurationPolicy:
    standings: tuple[str, ...] = field(
        default=("active",), metadata={"help": "Annotator standings whose work counts."})
    aggregation: str = field(
        default="dawid_skene", metadata={"help": "How several judgments of one comparison become one: "
                                         "none (a pair per judgment), majority, dawid_skene, bias_aware "
                                         "(Dawid-Skene's ties and both-bads, then a model of each annotator's "
                                         "reliability and pull towards position, length, assertiveness and lists "
                                         "decides A or B: rewards/bias_aware.py), or bradley_terry (over all of a "
                                         "prompt's compared responses)."})
    min_judgments: int = field(default=1, metadata={"help": "Fewest counted judgments an item needs."})
    min_confidence: float = field(
        default=0.0, metadata={"help": "Lowest aggregated confidence (vote share or posterior) kept."})
    tags: tuple[str, ...] = field(default=TAGS, metadata={"help": "Which pairs: comparison, rewrite, adversarial, ranking."})
    margins: tuple[tuple[str, float], ...] = field(
        default=tuple(sorted((k, round(v, 6)) for k, v in STRENGTH_MARGIN.items())),
        metadata={"help": "Strength -> TRL margin."})
    test_fraction: float = field(default=0.1, metadata={"help": "Share held out for testing, per domain and tag."})
    seed: int = field(default=0, metadata={"help": "Fixes the split and every sampling choice."})
    # Sampling: applied in this order, only ever by leaving pairs out (never by repeating them).
    dedupe: bool = field(default=False, metadata={"help": "Drop near-duplicate pairs (same prompt, chosen and "
                                                 "rejected up to case, spacing and punctuation)."})
    per_domain_cap: int | None = field(default=None, metadata={"help": "At most this many pairs per domain."})
    domain_targets: tuple[tuple[str, float], ...] = field(
        default=(), metadata={"help": "Target share per domain; unnamed domains share the rest."})
    tag_targets: tuple[tuple[str, float], ...] = field(
        default=(), metadata={"help": "Target share per tag (comparison, rewrite, adversarial, ranking); "
                              "a ranking counts once, whatever number of pairs it expands to."})
    hard_share_min: float | None = field(
        default=None, metadata={"help": "At least this share of pairs on hard prompts (difficulty hard)."})
    drop_biased: tuple[str, ...] = field(
        default=(), metadata={"help": "Bias flags (length, position, confidence, formatting, speed, sycophancy) "
                              "whose annotators' judgments are left out where the bias applies: a length-biased "
                              "rater's on pairs whose lengths differ by more than the analytics gap, a "
                              "position-biased or too-fast rater's everywhere. Flags come from the latest "
                              "analytics computation; the set's counts say how many were left out."})
    biased_weight: float = field(
        default=0.0, metadata={"help": "What a judgment under drop_biased counts for: 0 leaves it out; between 0 and 1 "
                               "keeps it down-weighted in the aggregation (majority, Dawid-Skene, bias-aware, "
                               "Bradley-Terry). With aggregation none each judgment is a pair of its own and "
                               "cannot be partly in a set, so any weight below 1 leaves it out there."})
    judge_labels: str = field(
        default="exclude", metadata={"help": "AI judges' labels (training/services/judges.py): exclude (people's labels "
                                     "only, the default), tiebreak (people's labels are aggregated alone; where that "
                                     "gives no winner because people split evenly between A and B, the judges' side "
                                     "decides, if they agree; a judge never makes min_judgments), or include (a "
                                     "judge counts as one more rater). The set's counts say how many were left out, "
                                     "counted and how many items a judge decided."})
    chosen_shorter_share: float | None = field(
        default=None, metadata={"help": "Target share of pairs whose chosen response is the shorter one "
                                "(length-aware: concise good answers against longer bad ones)."})

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
        if set(self.drop_biased) - set(BIAS_DROPS):
            out["drop_biased"] = f"Choose from {', '.join(BIAS_DROPS)}."
        if isinstance(self.biased_weight, bool) or not isinstance(self.biased_weight, (int, float)) \
                or not 0.0 <= self.biased_weight <= 1.0:
            out["biased_weight"] = "From 0 (leave out) to 1 (count in full)."
        if self.judge_labels not in JUDGE_LABELS:
            out["judge_labels"] = f"Use one of {', '.join(JUDGE_LABELS)}."
        margins = dict(self.margins)
        if set(margins) != set(STRENGTH_MARGIN) or any(not 0 <= m <= 10 for m in margins.values()):
            out["margins"] = "Give a margin from 0 to 10 for slight, clear and strong."
        if not 0.0 <= self.test_fraction < 1.0:
            out["test_fraction"] = "From 0 up to (not including) 1."
        if self.per_domain_cap is not None and self.per_domain_cap < 1:
            out["per_domain_cap"] = "At least 1, or none."
        for name in ("domain_targets", "tag_targets"):
            targets = dict(getattr(self, name))
            if any(not 0 < v <= 1 for v in targets.values()) or sum(targets.values()) > 1 + 1e-9:
                out[name] = "Shares above 0 that add up to at most 1."
        if set(dict(self.tag_targets)) - set(TAGS):
            out["tag_targets"] = f"Tags are {', '.join(TAGS)}."
        for name in ("hard_share_min", "chosen_shorter_share"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                out[name] = "A share above 0 and below 1, or none."
        return out

    def to_dict(self) -> dict:
        data = asdict(self)
        data["standings"], data["tags"] = sorted(set(self.standings)), [t for t in TAGS if t in self.tags]
        data["drop_biased"] = sorted(set(self.drop_biased))
        data["margins"] = dict(self.margins)
        data["domain_targets"], data["tag_targets"] = dict(self.domain_targets), dict(self.tag_targets)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> CurationPolicy:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown policy field(s): {', '.join(sorted(unknown))}")
        values = dict(data)
        for name in ("standings", "tags", "drop_biased"):
            if name in values:
                values[name] = tuple(values[name])
        for name in ("margins", "domain_targets", "tag_targets"):
            if name in values:
                # + 0.0: a -0.0 would print as "-0.0" in Python and "0" in PostgreSQL.
                values[name] = tuple(sorted((str(k), float(v) + 0.0) for k, v in dict(values[name]).items()))
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
    """{key: train | test}. Every pair of one prompt lands on the same side (a model must not be
    tested on a prompt it was trained on). Prompts are stratified by the domain and tag of their
    first pair; the test share is round(fraction * prompts) overall, given out to the strata by
    largest remainder so small strata do not all round the same way; within a stratum the prompts
    are chosen by a seeded hash (independent of input order)."""
    first: dict[int, Candidate] = {}
    keys: dict[int, list[str]] = defaultdict(list)
    for c in candidates:
        first.setdefault(c.prompt_id, c)
        keys[c.prompt_id].append(c.key)
    strata: dict[tuple[str, str], list[int]] = defaultdict(list)
    for prompt_id, c in first.items():
        strata[(c.domain, c.tag)].append(prompt_id)
    wanted = {s: fraction * len(p) for s, p in strata.items()}
    n_test = {s: int(w) for s, w in wanted.items()}
    spare = int(round(fraction * len(first))) - sum(n_test.values())
    for s in sorted(wanted, key=lambda s: (-(wanted[s] - n_test[s]), s))[: max(spare, 0)]:
        n_test[s] += 1
    out: dict[str, str] = {}
    for s, prompts in strata.items():
        ranked = sorted(prompts, key=lambda p: _unit(seed, f"prompt:{p}"))
        for i, prompt_id in enumerate(ranked):
            for key in keys[prompt_id]:
                out[key] = "test" if i < n_test[s] else "train"
    return out


def _normalised(text: str) -> str:
    return " ".join("".join(ch for ch in text.lower() if ch.isalnum() or ch.isspace()).split())


def _units(candidates: Sequence[Candidate]) -> dict[str, list[Candidate]]:
    """Pairs grouped into their units (a ranking's pairs travel together), in key order."""
    units: dict[str, list[Candidate]] = {}
    for c in candidates:
        units.setdefault(c.unit or c.key, []).append(c)
    return units


def _thin(units: dict[str, list[Candidate]], group, keep: dict, seed: int) -> dict[str, list[Candidate]]:
    """Keep `keep[g]` units of each group g (all of a group not in `keep`), chosen by seeded hash."""
    by_group: dict = defaultdict(list)
    for unit, pairs in units.items():
        by_group[group(pairs[0])].append(unit)
    kept: set[str] = set()
    for g, members in by_group.items():
        ranked = sorted(members, key=lambda u: _unit(seed, u))
        kept.update(ranked[: keep.get(g, len(ranked))])
    return {u: p for u, p in units.items() if u in kept}


def _to_shares(units, group, targets: dict, seed: int) -> dict[str, list[Candidate]]:
    """Leave units out until the named groups hold their target shares (the rest share 1 - sum):
    the largest total every group can still fill, so nothing is repeated."""
    sizes = Counter(group(p[0]) for p in units.values())
    rest = 1.0 - sum(targets.values())
    # A named group with nothing in it (or no unnamed group to take the rest) cannot be filled by
    # leaving pairs out: it is skipped rather than emptying the set; the coverage report then
    # names the shortfall.
    limits = [sizes[g] / t for g, t in targets.items() if t > 0 and sizes.get(g, 0) > 0]
    others = sum(n for g, n in sizes.items() if g not in targets)
    if rest > 1e-9 and others:
        limits.append(others / rest)
    if not limits:
        return units
    total = min(limits)
    keep = {g: int(round(t * total)) for g, t in targets.items()}
    if rest > 1e-9 and others:
        for g, n in sizes.items():
            if g not in targets:
                keep[g] = int(round(n * (rest * total) / others))
    else:
        keep.update({g: 0 for g in sizes if g not in targets})
    return _thin(units, group, keep, seed)


def _at_least(units, is_special, share: float, seed: int) -> dict[str, list[Candidate]]:
    """Leave out ordinary units until special ones are at least `share` of the total."""
    special = sum(1 for p in units.values() if is_special(p[0]))
    ordinary = len(units) - special
    if special == 0:  # nothing to raise the share with: keep the set (the coverage report warns)
        return units
    allowed = int(special * (1 - share) / share) if share > 0 else ordinary
    return _thin(units, is_special, {False: min(ordinary, allowed)}, seed)


def sample(candidates: Sequence[Candidate], policy: CurationPolicy) -> tuple[list[Candidate], Counter]:
    """Apply the policy's sampling controls in order; returns the kept pairs (key order) and how
    many each step left out."""
    left_out: Counter = Counter()
    units = _units(candidates)

    def step(name: str, new: dict[str, list[Candidate]]) -> dict[str, list[Candidate]]:
        left_out[name] += sum(len(p) for p in units.values()) - sum(len(p) for p in new.values())
        return new

    if policy.dedupe:
        seen: set[tuple[str, str, str]] = set()
        kept = {}
        for unit, pairs in units.items():
            c = pairs[0]
            signature = (_normalised(json.dumps(c.messages, sort_keys=True)), _normalised(c.chosen), _normalised(c.rejected))
            if len(pairs) == 1 and signature in seen:
                continue
            seen.add(signature)
            kept[unit] = pairs
        units = step("near_duplicates", kept)
    if policy.per_domain_cap is not None:
        sizes = Counter(p[0].domain for p in units.values())
        units = step("per_domain_cap", _thin(units, lambda c: c.domain, {d: min(n, policy.per_domain_cap) for d, n in sizes.items()}, policy.seed))
    if policy.domain_targets:
        units = step("domain_targets", _to_shares(units, lambda c: c.domain, dict(policy.domain_targets), policy.seed))
    if policy.tag_targets:
        units = step("tag_targets", _to_shares(units, lambda c: c.tag, dict(policy.tag_targets), policy.seed))
    if policy.hard_share_min is not None:
        units = step("hard_share_min", _at_least(units, lambda c: c.difficulty == "hard", policy.hard_share_min, policy.seed))
    if policy.chosen_shorter_share is not None:
        shorter = lambda c: len(c.chosen) < len(c.rejected)  # noqa: E731
        share = policy.chosen_shorter_share
        units = step("chosen_shorter_share", _to_shares(units, shorter, {True: share, False: 1 - share}, policy.seed))
    kept = sorted((c for pairs in units.values() for c in pairs), key=lambda c: c.key)
    return kept, left_out


def canonical_line(row: dict) -> bytes:
    return (json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def content_hash(policy: CurationPolicy, rows: Iterable[dict]) -> str:
    """sha256 over the policy and every pair as canonical JSON, in set order."""
    digest = hashlib.sha256(canonical_line({"policy": policy.to_dict()}))
    for row in rows:
        digest.update(canonical_line(row))
    return digest.hexdigest()


# ---------------------------------------------------------------- coverage

THIN_PAIRS = 5000  # fewer pairs than this: thin for anything but a narrow domain (DESIGN.md section 4)
HARD_SHARE_FLOOR = 0.20
LENGTH_BINS = (-10_000, -500, -200, -100, -30, 30, 100, 200, 500, 10_000)
CONFIDENCE_BINS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0000001)


def _histogram(values: Sequence[float], edges: Sequence[float]) -> list[dict]:
    counts = [0] * (len(edges) - 1)
    for v in values:
        v = min(max(v, edges[0]), edges[-1] - 1e-9)  # the end bins are open-ended
        for i in range(len(edges) - 1):
            if edges[i] <= v < edges[i + 1]:
                counts[i] += 1
                break
    return [{"low": edges[i], "high": edges[i + 1], "count": counts[i]} for i in range(len(counts))]


def coverage_report(pairs: Sequence[dict], policy: CurationPolicy) -> dict:
    """What the set covers (domains, tags, flaw types, difficulty, length gaps, agreement) and
    where it is thin, in plain words. `pairs`: dicts with domain, tag, flaw_type, difficulty,
    chosen, rejected, confidence, split."""
    n = len(pairs)

    def shares(values) -> list[dict]:
        counted = Counter(values)
        return [{"name": k or "(none)", "count": v, "share": round(v / n, 4) if n else 0.0}
                for k, v in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))]

    gaps = [len(p["chosen"]) - len(p["rejected"]) for p in pairs]
    hard = sum(p["difficulty"] == "hard" for p in pairs)
    domains = shares(p["domain"] for p in pairs)
    warnings = []
    if n < THIN_PAIRS:
        warnings.append(f"Only {n:,} pairs: a reward model wants at least {THIN_PAIRS:,} for a narrow domain "
                        "and 50k or more for a broad assistant.")
    by_domain = {d["name"]: d["share"] for d in domains}
    slack = max(0.01, 1.0 / n) if n else 0.0  # one pair either way is rounding, not a shortfall
    for domain, target in sorted(dict(policy.domain_targets).items()):
        if by_domain.get(domain, 0.0) + slack < target:
            warnings.append(f"Domain {domain} is {by_domain.get(domain, 0.0):.0%} of the set, under its target of {target:.0%}.")
    hard_share = hard / n if n else 0.0
    if hard_share < HARD_SHARE_FLOOR:
        warnings.append(f"Hard cases are {hard_share:.0%} of the set, under {HARD_SHARE_FLOOR:.0%}: "
                        "20-30% of the budget on hard cases pays off most.")
    longer = sum(g > 0 for g in gaps)
    if n and longer / n > 0.65:
        warnings.append(f"The chosen response is the longer one in {longer / n:.0%} of pairs: a reward model "
                        "trained on this may learn that longer wins (see chosen_shorter_share).")
    return {
        "pairs": n,
        "domains": domains,
        "tags": shares(p["tag"] for p in pairs),
        "flaw_types": shares(p["flaw_type"] for p in pairs if p["tag"] == "adversarial"),
        "difficulty": shares(p["difficulty"] for p in pairs),
        "splits": shares(p["split"] for p in pairs),
        "hard_share": round(hard_share, 4),
        "chosen_longer_share": round(longer / n, 4) if n else 0.0,
        "length_gap": _histogram(gaps, LENGTH_BINS),
        "confidence": _histogram([p["confidence"] for p in pairs], CONFIDENCE_BINS),
        "mean_confidence": round(sum(p["confidence"] for p in pairs) / n, 4) if n else None,
        "warnings": warnings,
    }
