"""Dataset health: what would a reward model learn from these labels? Pure numpy, no Django.

Per item the decisive majority (more A than B votes, or the reverse) gives a chosen and a rejected
response; ties in the vote give no pair.
"""
from __future__ import annotations

import numpy as np

LONGER_WARNING = 0.60  # share of chosen-longer pairs above which the set teaches "longer is better"


def _share_rows(labels: list[str], counts: np.ndarray, targets: dict[str, float]) -> list[dict]:
    total = counts.sum()
    rows = []
    for name in sorted(set(labels) | set(targets)):
        n = int(counts[labels.index(name)]) if name in labels else 0
        share = n / total if total else 0.0
        target = targets.get(name)
        rows.append({"name": name or "(none)", "items": n, "share": round(share, 4),
                     "target": target, "gap": None if target is None else round(share - target, 4)})
    return rows


def dataset_health(
    *,
    len_a: np.ndarray,
    len_b: np.ndarray,
    votes: np.ndarray,  # items x 4: counts of a, b, tie, both_bad
    domain: list[str],
    difficulty: list[str],
    hard: np.ndarray,
    length_gap_chars: int,
    domain_targets: dict[str, float],
    difficulty_targets: dict[str, float],
    hard_share_min: float,
    hard_share_max: float,
    coverage_tolerance: float = 0.05,
) -> dict:
    judged = votes.sum(axis=1) > 0
    a_wins = judged & (votes[:, 0] > votes[:, 1])
    b_wins = judged & (votes[:, 1] > votes[:, 0])
    decided = a_wins | b_wins
    chosen = np.where(a_wins, len_a, len_b)[decided]
    rejected = np.where(a_wins, len_b, len_a)[decided]
    diff = chosen - rejected
    clear_gap = np.abs(diff) > length_gap_chars
    longer_share = float((diff[clear_gap] > 0).mean()) if clear_gap.any() else None

    if diff.size:
        edge = float(max(np.percentile(np.abs(diff), 98), 1.0))
        bins = np.linspace(-edge, edge, 21)
        hist, _ = np.histogram(np.clip(diff, -edge, edge), bins=bins)
        histogram = {"edges": [round(float(x)) for x in bins], "counts": [int(c) for c in hist]}
    else:
        histogram = {"edges": [], "counts": []}

    total_votes = votes.sum()
    j_domain = [d for d, ok in zip(domain, judged) if ok]
    j_difficulty = [d for d, ok in zip(difficulty, judged) if ok]
    domain_names = sorted(set(j_domain))
    difficulty_names = sorted(set(j_difficulty))
    domain_counts = np.array([j_domain.count(n) for n in domain_names])
    difficulty_counts = np.array([j_difficulty.count(n) for n in difficulty_names])
    n_judged = int(judged.sum())
    hard_share = float(hard[judged].mean()) if n_judged else None

    out = {
        "items_judged": n_judged,
        "pairs": int(decided.sum()),
        "length": {
            "chosen_mean": round(float(chosen.mean()), 1) if chosen.size else None,
            "rejected_mean": round(float(rejected.mean()), 1) if rejected.size else None,
            "chosen_median": float(np.median(chosen)) if chosen.size else None,
            "rejected_median": float(np.median(rejected)) if rejected.size else None,
            "pairs_with_gap": int(clear_gap.sum()),
            "chosen_longer_share": None if longer_share is None else round(longer_share, 4),
            "histogram": histogram,
        },
        "domains": _share_rows(domain_names, domain_counts, domain_targets),
        "difficulty": _share_rows(difficulty_names, difficulty_counts, difficulty_targets),
        "hard_share": None if hard_share is None else round(hard_share, 4),
        "hard_target": [hard_share_min, hard_share_max],
        "tie_rate": round(float(votes[:, 2].sum() / total_votes), 4) if total_votes else None,
        "both_bad_rate": round(float(votes[:, 3].sum() / total_votes), 4) if total_votes else None,
    }
    out["warnings"] = _warnings(out, length_gap_chars, coverage_tolerance)
    return out


def _warnings(h: dict, gap: int, tolerance: float) -> list[str]:
    warnings = []
    share = h["length"]["chosen_longer_share"]
    if share is not None and share > LONGER_WARNING:
        warnings.append(
            f"The chosen response is the longer one in {share:.0%} of the {h['length']['pairs_with_gap']} pairs whose "
            f"lengths differ by more than {gap} characters: a reward model trained on this learns that longer is better."
        )
    if h["hard_share"] is not None:
        low, high = h["hard_target"]
        if h["hard_share"] < low:
            warnings.append(f"Hard cases are {h['hard_share']:.0%} of the judged items, under the {low:.0%} target.")
        elif h["hard_share"] > high:
            warnings.append(f"Hard cases are {h['hard_share']:.0%} of the judged items, over the {high:.0%} target.")
    for key, what in (("domains", "Domain"), ("difficulty", "Difficulty")):
        for row in h[key]:
            if row["gap"] is not None and row["gap"] < -tolerance:
                warnings.append(f"{what} '{row['name']}' is {row['share']:.0%} of the judged items against a "
                                f"target of {row['target']:.0%}.")
    return warnings
