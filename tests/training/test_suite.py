"""The behavioural suite, pure: the same prompts per dimension for every checkpoint, judged by the
verifiers and text statistics, and marked weak against the starting policy with reasons."""
from __future__ import annotations

from training.monitors import MonitorThresholds
from training.suite import evaluate, flagged_prompt_ids, judge, suite_rows


def _row(pid: int, domain: str, truth: str | None = None) -> dict:
    return {"prompt": [{"role": "user", "content": f"q{pid}"}], "ground_truth": truth, "domain": domain, "prompt_id": pid}


ROWS = [_row(1, "math", "4"), _row(2, "math", "7"), _row(3, "chat"), _row(4, "chat"), _row(5, "math", "1")]


def test_the_suite_takes_the_same_prompts_per_dimension_for_a_seed():
    picked = suite_rows(ROWS, per_dimension=2, seed=3)
    assert sorted(r["domain"] for r in picked) == ["chat", "chat", "math", "math"]
    # Which math prompts: fixed by the seed, and the seed matters.
    draws = {tuple(r["prompt_id"] for r in suite_rows(ROWS, per_dimension=2, seed=s)) for s in range(10)}
    assert len(draws) > 1
    assert [r["prompt_id"] for r in picked] == [r["prompt_id"] for r in suite_rows(list(ROWS), per_dimension=2, seed=3)]


def test_evaluate_scores_each_dimension_without_a_reward_model():
    results = {r.dimension: r for r in evaluate(ROWS, ["4", "the answer is 3", "sure", "maybe, perhaps", "1"],
                                                 verifiers=["math"])}
    math = results["math"]
    assert (math.prompts, math.verified, round(math.verifier_pass, 3)) == (3, 2 + 1, round(2 / 3, 3))
    assert results["chat"].verifier_pass is None and results["chat"].verified == 0
    assert results["chat"].hedging > 0 and results["chat"].mean_length == 1.5
    assert flagged_prompt_ids(math) == [2]  # the one it got wrong
    assert flagged_prompt_ids(results["chat"]) == [3, 4]  # no verifier: all of them


def test_a_checkpoint_is_weak_when_worse_than_the_start_and_says_why():
    thresholds = MonitorThresholds()
    start = evaluate(ROWS, ["4", "7", "yes", "no", "1"], verifiers=["math"])
    later = evaluate(ROWS, ["4 maybe perhaps it might be", "3", "perhaps yes i think", "maybe no", "1"],
                     verifiers=["math"])
    judged = {r.dimension: judge(r, base, thresholds) for r, base in zip(later, start)}
    assert judged["math"].weak
    assert any("verifier score fell" in reason for reason in judged["math"].reasons)
    assert any("hedging rose" in reason for reason in judged["chat"].reasons)
    same = evaluate(ROWS, ["4", "7", "yes", "no", "1"], verifiers=["math"])
    assert not any(judge(r, base, thresholds).weak for r, base in zip(same, start))
    assert not judge(start[0], None, thresholds).weak  # the start itself is the baseline
