"""Export formats of a frozen preference set beyond TRL's pair formats (DESIGN.md section 5).
Pure: rows in, rows out; no Django.

- trl-prompt-only: one row per prompt for GRPO/RLOO: {"prompt": [messages], "ground_truth", "domain"}
  (every extra column reaches TRL's reward functions as a keyword argument).
- openrlhf-reward: {"prompt", "chosen", "rejected", "margin"} as text (train_rm: --prompt_key prompt
  --chosen_key chosen --rejected_key rejected); openrlhf-prompt: {"input", "label"} (train_ppo:
  --input_key input --label_key label).
- verl: parquet rows {"data_source", "prompt": [messages], "ability", "reward_model": {"style",
  "ground_truth"}, "extra_info": {"split", "index"}}.
- ranking: the set's rankings rebuilt from their expanded pairs.
- rm-r1: a judge prompt with both answers, A/B order alternating by position, "winner", and a
  rubric/eval/answer target whose evaluation is the annotators' rationales.
- sft: approved rewrites, {"messages": [... , assistant]}.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from .formats import prompt_as_text

PROMPT_FORMATS = ("trl-prompt-only", "openrlhf-prompt", "verl")
PAIR_ROW_FORMATS = ("openrlhf-reward", "rm-r1", "sft")
SET_FORMATS = ("trl", "trl-conversational", "trl-prompt-only", "openrlhf-reward", "openrlhf-prompt", "verl",
               "ranking", "rm-r1", "sft")
FILE_EXTENSIONS = {"verl": "parquet"}

# The readers' own words for the columns (written into the manifest, so nobody guesses them).
READER_ARGS = {
    "trl": "datasets.load_dataset('json'); RewardTrainer / DPOTrainer",
    "trl-conversational": "datasets.load_dataset('json'); RewardTrainer / DPOTrainer",
    "trl-prompt-only": "datasets.load_dataset('json'); GRPOTrainer / RLOOTrainer (ground_truth, domain reach reward funcs)",
    "openrlhf-reward": "openrlhf.cli.train_rm --prompt_key prompt --chosen_key chosen --rejected_key rejected",
    "openrlhf-prompt": "openrlhf.cli.train_ppo_ray --input_key input --label_key label",
    "verl": "verl.trainer.main_ppo data.train_files=<file>.parquet (RLHFDataset)",
    "ranking": "datasets.load_dataset('json')",
    "rm-r1": "datasets.load_dataset('json'); context_messages + winner (RM-R1)",
    "sft": "datasets.load_dataset('json'); SFTTrainer",
}

JUDGE_SYSTEM = (
    "Please act as an impartial judge and decide which of two chatbot responses better answers the "
    "client's question. First write a rubric for this question inside <rubric></rubric>, then evaluate "
    "both responses against it inside <eval></eval>, and finally give your verdict inside "
    "<answer></answer> as [[A]] or [[B]]."
)


def judge_user_text(messages: Sequence[dict], a: str, b: str) -> str:
    """The judge prompt's user turn: the question, then response A and response B. The rm-r1 export
    and every AI judge (training/services/judges.py) use this one text, so a judge fine-tuned on the export
    is asked in the words it learned."""
    return (
        f"[Client Question]\n{prompt_as_text(messages)}\n\n"
        f"[The Start of Chatbot A's Response]\n{a}\n[The End of Chatbot A's Response]\n\n"
        f"[The Start of Chatbot B's Response]\n{b}\n[The End of Chatbot B's Response]"
    )


def _messages(messages: Sequence[dict]) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def prompt_rows(pairs: Iterable[dict], fmt: str) -> Iterator[dict]:
    """One row per distinct prompt, in the order the set first meets it."""
    seen: set[int] = set()
    for index, p in enumerate(pairs):
        if p["prompt_id"] in seen:
            continue
        seen.add(p["prompt_id"])
        truth = p["ground_truth"]
        if fmt == "trl-prompt-only":
            yield {"prompt": _messages(p["messages"]), "ground_truth": truth, "domain": p["domain"]}
        elif fmt == "openrlhf-prompt":
            yield {"input": prompt_as_text(p["messages"]), "label": truth or ""}
        elif fmt == "verl":
            yield {
                "data_source": f"preference-studio/{p['domain'] or 'general'}",
                "prompt": _messages(p["messages"]),
                "ability": p["domain"] or "general",
                "reward_model": {"style": "rule" if truth else "model", "ground_truth": truth or ""},
                "extra_info": {"split": p["split"], "index": len(seen) - 1, "key": p["key"]},
            }
        else:
            raise ValueError(f"not a prompt format: {fmt!r}")


def rubric_of(dimensions: Sequence[dict], pair: dict) -> str:
    lines = [f"- {d['label']}: {d.get('description', '')}".rstrip(": ") for d in dimensions]
    if pair["tag"] == "adversarial" and pair["flaw_type"]:
        lines.append(f"- Watch for: {pair['flaw_type'].replace('_', ' ')}.")
    return "\n".join(lines)


def pair_row(pair: dict, fmt: str, *, dimensions: Sequence[dict] = ()) -> dict | None:
    if fmt == "openrlhf-reward":
        return {"prompt": prompt_as_text(pair["messages"]), "chosen": pair["chosen"], "rejected": pair["rejected"],
                "margin": pair["margin"]}
    if fmt == "sft":
        if pair["tag"] != "rewrite":
            return None
        return {"messages": [*_messages(pair["messages"]), {"role": "assistant", "content": pair["chosen"]}]}
    if fmt == "rm-r1":
        chosen_first = pair["position"] % 2 == 0  # alternate, so "A wins" is no shortcut
        a, b = (pair["chosen"], pair["rejected"]) if chosen_first else (pair["rejected"], pair["chosen"])
        verdict = "A" if chosen_first else "B"
        user = judge_user_text(pair["messages"], a, b)
        notes = "\n".join(f"- {r.strip()}" for r in pair["rationales"] if r and r.strip())
        evaluation = f"Chatbot {verdict} is better. Annotators' reasons:\n{notes}" if notes else f"Chatbot {verdict} is better."
        return {
            "context_messages": [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}],
            "winner": f"model_{verdict.lower()}",
            "target": f"<rubric>{rubric_of(dimensions, pair)}</rubric><eval>{evaluation}</eval><answer>[[{verdict}]]</answer>",
            "domain": pair["domain"],
        }
    raise ValueError(f"not a pair format: {fmt!r}")


def ranking_rows(pairs: Iterable[dict]) -> Iterator[dict]:
    """Rankings rebuilt from their expanded pairs (keys ranking:<judgment>:<better>:<worse>):
    rank by wins, ties (pairs never expanded) share a rank; score as annotation.ranking.scores_of."""
    current, group = None, []
    for p in pairs:
        if p["tag"] != "ranking":
            continue
        judgment = p["key"].split(":")[1]
        if judgment != current and group:
            yield _ranking(group)
            group = []
        current = judgment
        group.append(p)
    if group:
        yield _ranking(group)


def _ranking(group: list[dict]) -> dict:
    wins: dict[int, int] = {}
    losses: dict[int, int] = {}
    texts: dict[int, str] = {}
    for p in group:
        wins[p["chosen_id"]] = wins.get(p["chosen_id"], 0) + 1
        losses[p["rejected_id"]] = losses.get(p["rejected_id"], 0) + 1
        texts[p["chosen_id"]], texts[p["rejected_id"]] = p["chosen"], p["rejected"]
    ids = sorted(texts)
    k = len(ids)
    levels = sorted({wins.get(i, 0) for i in ids}, reverse=True)
    responses = []
    for rid in sorted(ids, key=lambda i: (-wins.get(i, 0), i)):
        w, lost = wins.get(rid, 0), losses.get(rid, 0)
        ties = k - 1 - w - lost
        responses.append({"id": rid, "content": texts[rid], "rank": levels.index(w) + 1,
                          "score": round((w + 0.5 * ties) / (k - 1), 6) if k > 1 else 1.0})
    first = group[0]
    return {"prompt": _messages(first["messages"]), "domain": first["domain"], "responses": responses,
            "ground_truth": first["ground_truth"]}
