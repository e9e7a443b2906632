"""The behavioural test suite: a fixed set of held-out prompts per behaviour dimension (the prompt's
domain), answered greedily by each checkpoint and judged without the reward model: by the
verifiers where one applies, and by length, hedging and list statistics. Pure: no Django, no torch.

A checkpoint is weak on a dimension when, against the starting policy (step 0) on the same prompts:
- its verifier score fell by more than `verifier_drop`;
- its answers grew by more than the monitors' `length_rise` while the verifier score did not rise
  by `verifier_flat` (longer without better);
- hedging rose by more than `hedging_rise` per 100 words, or the list rate by more than `list_rise`.
The monitors' project thresholds are reused, so a lead sets one notion of "rising" for both.
"""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from .monitors import MonitorThresholds, text_stats

VERIFIER_DROP = 0.1


@dataclass
class DimensionResult:
    dimension: str
    prompts: int
    verified: int
    verifier_pass: float | None
    mean_length: float  # words
    hedging: float
    list_rate: float
    per_prompt: list[dict] = field(default_factory=list)  # {prompt_id, completion, score}
    weak: bool = False
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def suite_rows(rows: Sequence[dict], *, per_dimension: int, seed: int = 0) -> list[dict]:
    """Up to `per_dimension` prompts of each domain, drawn once with `seed` so every checkpoint
    answers the same ones."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row.get("domain") or "general"].append(row)
    rng = random.Random(seed)
    out = []
    for domain in sorted(groups):
        chosen = list(groups[domain])
        rng.shuffle(chosen)
        out.extend(chosen[:per_dimension])
    return out


def evaluate(rows: Sequence[dict], completions: Sequence[str], *, verifiers: Sequence[str],
             format_tags: Sequence[str] = ()) -> list[DimensionResult]:
    from rewards.verifiers import verify

    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        groups[row.get("domain") or "general"].append(i)
    results = []
    for dimension in sorted(groups):
        index = groups[dimension]
        per_prompt, scores = [], []
        for i in index:
            values = [verify(name, completions[i], rows[i], format_tags=format_tags) for name in verifiers]
            values = [v for v in values if v is not None]
            score = sum(values) / len(values) if values else None
            if score is not None:
                scores.append(score)
            per_prompt.append({"prompt_id": rows[i].get("prompt_id"), "completion": completions[i], "score": score})
        texts = [completions[i] for i in index]
        stats = text_stats(texts)
        results.append(DimensionResult(
            dimension=dimension, prompts=len(index), verified=len(scores),
            verifier_pass=sum(scores) / len(scores) if scores else None,
            mean_length=sum(len(t.split()) for t in texts) / len(texts),
            hedging=stats["hedging"] or 0.0, list_rate=stats["list_rate"] or 0.0, per_prompt=per_prompt))
    return results


def judge(result: DimensionResult, baseline: DimensionResult | None, thresholds: MonitorThresholds) -> DimensionResult:
    """Mark `result` weak (with reasons in words) against the starting policy's result."""
    reasons = []
    if baseline is not None:
        gain = None
        if result.verifier_pass is not None and baseline.verifier_pass is not None:
            gain = result.verifier_pass - baseline.verifier_pass
            if gain < -VERIFIER_DROP:
                reasons.append(f"verifier score fell from {baseline.verifier_pass:.2f} to {result.verifier_pass:.2f}")
        if baseline.mean_length > 0:
            rise = result.mean_length / baseline.mean_length - 1
            if rise > thresholds.length_rise and (gain is None or gain < thresholds.verifier_flat):
                reasons.append(f"answers {rise:.0%} longer ({baseline.mean_length:.1f} to {result.mean_length:.1f} "
                               "words) without a better verifier score")
        if result.hedging - baseline.hedging > thresholds.hedging_rise:
            reasons.append(f"hedging rose from {baseline.hedging:.1f} to {result.hedging:.1f} per 100 words")
        if result.list_rate - baseline.list_rate > thresholds.list_rise:
            reasons.append(f"list answers rose from {baseline.list_rate:.0%} to {result.list_rate:.0%}")
    result.weak, result.reasons = bool(reasons), reasons
    return result


def flagged_prompt_ids(result: DimensionResult) -> list:
    """The prompts to send to annotators from a weak dimension: those the verifier failed, or all
    of them when no verifier applies (the weakness is then in length or style)."""
    failed = [p["prompt_id"] for p in result.per_prompt if p["score"] is not None and p["score"] < 1.0]
    return failed or [p["prompt_id"] for p in result.per_prompt]
