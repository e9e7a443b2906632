"""Export formats for trainers (TRL, ...) and judgment aggregation. Pure: no Django.

Formats follow DESIGN.md section 5: rows load unchanged with `datasets.load_dataset("json", ...)`
and train TRL's RewardTrainer / DPOTrainer without conversion.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence

# Strength -> TRL `margin` (RewardTrainer subtracts it inside the log-sigmoid). Graded like the
# Llama 2 reward model's margin component: a strong preference asks for a larger score gap.
STRENGTH_MARGIN: dict[str, float] = {"slight": 1 / 3, "clear": 2 / 3, "strong": 1.0}
STRENGTH_ORDER = ("slight", "clear", "strong")

PAIR_FORMATS = ("trl", "trl-conversational")
RANKING_FORMAT = "ranking"
SFT_FORMATS = ("sft-messages", "sft-prompt-completion")
FORMATS = (*PAIR_FORMATS, RANKING_FORMAT, *SFT_FORMATS)
TAGS = ("comparison", "rewrite", "adversarial", "ranking")


def prompt_as_text(messages: Sequence[dict]) -> str:
    """A message list as one string for the standard (non-conversational) format. A single user
    turn is its content alone; a multi-turn prompt keeps who said what."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def _messages(messages: Sequence[dict]) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def preference_row(
    *,
    fmt: str,
    messages: Sequence[dict],
    chosen: str,
    rejected: str,
    strength: str,
    tag: str = "comparison",
    flaw_type: str | None = None,
    margin: float | None = None,
) -> dict:
    """A TRL preference row. `tag` (comparison, rewrite, adversarial, ranking) and `flaw_type`
    (adversarial pairs) are extra columns: trainers ignore them, curation and evaluation use them.
    `margin` defaults to the strength's (a preference set's policy may map strengths otherwise)."""
    margin = round(STRENGTH_MARGIN.get(strength, STRENGTH_MARGIN["clear"]) if margin is None else margin, 6)
    extra = {"margin": margin, "tag": tag, "flaw_type": flaw_type or None}
    if fmt == "trl":
        return {"prompt": prompt_as_text(messages), "chosen": chosen, "rejected": rejected, **extra}
    if fmt == "trl-conversational":
        return {
            "prompt": _messages(messages),
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
            **extra,
        }
    raise ValueError(f"unknown pair format {fmt!r}; use one of {', '.join(PAIR_FORMATS)}")


def ranking_row(
    *, messages: Sequence[dict], domain: str, responses: Sequence[tuple[int, str, int, float]],
    ground_truth: str | None,
) -> dict:
    """The ranking format (GRPO, K-wise training): responses best first, each with its rank
    (1 = best, ties share a rank) and a score in [0, 1] (annotation/ranking.py: scores_of)."""
    return {
        "prompt": _messages(messages),
        "domain": domain,
        "responses": [
            {"id": rid, "content": text, "rank": rank, "score": round(score, 6)}
            for rid, text, rank, score in sorted(responses, key=lambda r: (r[2], r[0]))
        ],
        "ground_truth": ground_truth,
    }


def sft_row(*, fmt: str, messages: Sequence[dict], completion: str) -> dict:
    """An SFT row from an approved rewrite: the whole conversation (`messages`) or the prompt and
    the completion as message lists (conversational prompt-completion, so TRL applies the chat
    template and computes the loss on the completion only)."""
    answer = {"role": "assistant", "content": completion}
    if fmt == "sft-messages":
        return {"messages": [*_messages(messages), answer]}
    if fmt == "sft-prompt-completion":
        return {"prompt": _messages(messages), "completion": [answer]}
    raise ValueError(f"unknown SFT format {fmt!r}; use one of {', '.join(SFT_FORMATS)}")


def majority_vote(votes: Iterable[tuple[str, str]]) -> tuple[str, str] | None:
    """(choice, strength) by plurality of the item's judgments, or None when there is no single
    winner. The strength is the lower median strength among the winning voters."""
    votes = list(votes)
    if not votes:
        return None
    counts = Counter(choice for choice, _ in votes).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None
    winner = counts[0][0]
    strengths = sorted(
        (STRENGTH_ORDER.index(s) for c, s in votes if c == winner and s in STRENGTH_ORDER)
    )
    strength = STRENGTH_ORDER[strengths[(len(strengths) - 1) // 2]] if strengths else ""
    return winner, strength


def jsonl_line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n"
