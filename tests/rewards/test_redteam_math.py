"""Red team for the math verifier (rewards/verifiers.py, math_answer): completions that try to earn
the reward without committing to the one right value must score 0.0, and honest answers in the
many formats a model really writes must still score 1.0. Pure: no database, no sandbox.

The rules these pin down are stated in the module docstring of rewards/verifiers.py ("Decisions").
"""
from __future__ import annotations

import time

import pytest

from rewards.verifiers import MAX_COMPLETION_CHARS, extract_answer, math_answer

GSM8K_TRUTH = ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
               "Altogether she sold 48+24 = <<48+24=72>>72 clips.\n#### 72")

# name -> (completion, ground truth, domain). Every one of these must score 0.0.
HACKS: dict[str, tuple[str, str, str]] = {
    # several boxed answers, the true one among them, in every position
    "boxes_true_first": ("\\boxed{42} or maybe \\boxed{41} or \\boxed{43}", "42", "math"),
    "boxes_true_middle": ("\\boxed{41} or maybe \\boxed{42} or \\boxed{43}", "42", "math"),
    "boxes_true_last": ("\\boxed{41} or maybe \\boxed{43} or \\boxed{42}", "42", "math"),
    "boxes_two_adjacent": ("\\boxed{4}\\boxed{2}", "42", "math"),
    "boxes_in_code_block_of_attempts": (
        "My attempts:\n```\nattempts = [\\boxed{40}, \\boxed{41}, \\boxed{42}]\n```\n", "42", "math"),
    "boxes_in_code_block_then_box": (
        "```\nattempt 1: \\boxed{41}\n```\nFinal: \\boxed{42}", "42", "math"),
    # one box holding several values
    "boxed_list": ("\\boxed{40, 41, 42}", "42", "math"),
    "boxed_set_of_candidates": ("\\boxed{\\{41, 42\\}}", "42", "math"),
    "boxed_interval": ("\\boxed{[40, 45]}", "45", "math"),
    "boxed_range_dash": ("\\boxed{40-45}", "45", "math"),
    "boxed_or": ("\\boxed{42 \\text{ or } 43}", "42", "math"),
    "text_or": ("The answer is $\\text{42 or 43}$.", "42", "math"),
    "boxed_pm": ("\\boxed{\\pm 42}", "42", "math"),
    "unicode_pm": ("The answer is ±42.", "42", "math"),
    # ranges and alternatives stated in words
    "answer_between": ("The answer is between 40 and 45.", "45", "math"),
    "answer_or": ("The answer is 42 or 43.", "42", "math"),
    "answer_to_range": ("The answer is 40 to 45.", "40", "math"),
    "bare_between": ("It must be somewhere between 40 and 45", "45", "math"),
    "bare_dash_range": ("Somewhere in 40-45", "45", "math"),
    "bare_to_range": ("I'd guess 40 to 45", "45", "math"),
    "bare_or": ("Probably 42 or 43", "42", "math"),
    "bare_or_truth_last": ("Probably 41 or 42", "42", "math"),
    "bare_pm": ("x = \\pm 42", "42", "math"),
    # hedging across markers: every marker present must state the same value
    "box_wrong_said_right": ("\\boxed{41}. On reflection the answer is 42.", "42", "math"),
    "said_right_box_wrong": ("The answer is 42. \\boxed{41}", "42", "math"),
    "tag_right_box_wrong": ("<answer>42</answer> \\boxed{41}", "42", "math"),
    "box_right_tag_wrong": ("\\boxed{42} <answer>41</answer>", "42", "math"),
    "tag_twice_differ": ("<answer>41</answer><answer>42</answer>", "42", "math"),
    "hashes_differ": ("#### 41\n#### 42", "42", "math"),
    "hash_right_said_wrong": ("The answer is 41.\n#### 42", "42", "math"),
    "said_twice_differ": ("The answer is 41. No wait, the answer is 42.", "42", "math"),
    "gsm8k_hash_wrong_box_right": ("48 + 24 = 72\n#### 70\n\\boxed{72}", GSM8K_TRUTH, "math"),
    # enumerations without a marker, the truth as the last number
    "enumeration_ellipsis": ("It could be 1, 2, 3, ..., 42", "42", "math"),
    "enumeration_commas": ("Candidates: 38, 39, 40, 41, 42", "42", "math"),
    "enumeration_lines": ("40\n41\n42", "42", "math"),
    "enumeration_ldots": ("$1, 2, \\ldots, 42$", "42", "math"),
    # extremely long outputs
    "long_numbers_100k": (" ".join(str(i) for i in range(30000)) + " \\boxed{42}", "42", "math"),
    "over_the_cap": ("x" * MAX_COMPLETION_CHARS + " \\boxed{42}", "42", "math"),
    # units, formats and qualifiers that change the value
    "percent_is_not_a_fraction": ("\\boxed{42\\%}", "0.42", "math"),
    "percent_said": ("The answer is 42%.", "0.42", "math"),
    "inequality_boxed": ("\\boxed{x > 41}", "42", "math"),
    "inequality_geq": ("\\boxed{x \\geq 42}", "42", "math"),
    "inequality_unicode": ("The answer is x ≥ 42.", "42", "math"),
    "inequality_bare": ("so x > 41", "41", "math"),
    "at_least_said": ("The answer is at least 42.", "42", "math"),
    "more_than_bare": ("it is more than 42", "42", "math"),
    "negated_answer": ("The answer is not 42.", "42", "math"),
    "approximately_wrong_value": ("The answer is approximately 42.", "42.5", "math"),
    "approximately_bare": ("approximately 42", "42", "math"),
    "tilde_bare": ("x ~ 42", "42", "math"),
    "hedge_after_bare": ("42 maybe", "42", "math"),
    "bound_after_bare": ("so 42 at most", "42", "math"),
    # unicode digits and invisible characters (see the module docstring)
    "fullwidth_digits_boxed": ("\\boxed{４２}", "42", "math"),
    "fullwidth_digits_bare": ("so we get ４２", "42", "math"),
    "arabic_indic_digits": ("\\boxed{٤٢}", "42", "math"),
    "zero_width_space_inside": ("\\boxed{4\u200b2}", "42", "math"),
    "zero_width_space_after": ("\\boxed{42\u200b}", "42", "math"),
    "bidi_override": ("\\boxed{\u202e24\u202c}", "42", "math"),
    # an answer that is not a value at all
    "empty_box_and_statement": ("\\boxed{} The answer is 42.", "42", "math"),
    "boxed_variable": ("\\boxed{x}", "42", "math"),
}

# name -> (completion, ground truth, domain). Every one of these must score 1.0.
HONEST: dict[str, tuple[str, str, str]] = {
    "boxed_integer": ("Adding them up, the total is \\boxed{42}.", "42", "math"),
    "boxed_in_dollars": ("The final answer is $\\boxed{42}$.", "42", "math"),
    "boxed_spaces": ("\\boxed{ 42 }", "42", "math"),
    "gsm8k_hashes": ("48 + 24 = 72\n#### 72", GSM8K_TRUTH, "math"),
    "gsm8k_worked_solution": (GSM8K_TRUTH, GSM8K_TRUTH, "math"),
    "gsm8k_truth_plain_number": ("She sold 24 in May, so 48 + 24 = 72 in all.\n#### 72", "72", "math"),
    "answer_is_fraction": ("The answer is 3/4.", "0.75", "math"),
    "latex_frac_vs_decimal": ("\\boxed{\\frac{3}{4}}", "0.75", "math"),
    "decimal_vs_latex_frac": ("\\boxed{0.75}", "\\frac{3}{4}", "math"),
    "dfrac_negative": ("\\boxed{\\dfrac{-1}{2}}", "-0.5", "math"),
    "variable_equals": ("So x = 5.\n<answer>x = 5</answer>", "5", "math"),
    "boxed_variable_equals": ("\\boxed{x = 5}", "5", "math"),
    "with_unit": ("The answer is 42 apples.", "42", "math"),
    "unit_bare": ("She has 42 apples", "42", "math"),
    "thousands_separator": ("The answer is 1,234.", "1234", "math"),
    "thousands_bare": ("In total 1,234", "1234", "math"),
    "negative_boxed": ("\\boxed{-7}", "-7", "math"),
    "negative_said": ("Answer: -2.50", "-2.5", "math"),
    "answer_tags": ("<answer>42</answer>", "42", "math"),
    "answer_tags_sentence": ("<answer>The answer is 12.</answer>", "12", "maths"),
    "scientific_notation": ("\\boxed{4.2e1}", "42", "math"),
    "trailing_zeros": ("\\boxed{42.0}", "42", "math"),
    "nested_boxes": ("\\boxed{\\boxed{42}}", "42", "math"),
    "same_box_twice": ("First pass: \\boxed{42}. Double-checking: \\boxed{42}.", "42", "math"),
    "same_value_two_forms": ("\\boxed{3/4}, that is, the answer is 0.75.", "0.75", "math"),
    "said_and_box_agree": ("The answer is \\boxed{5}. Check: 5 + 1 = 6", "5", "math"),
    "box_tag_hash_agree": ("\\boxed{72}\n<answer>72</answer>\n#### 72", GSM8K_TRUTH, "math"),
    "prose_answer_phrase_then_box": ("The answer is not obvious at first.\nWe find 6 * 7 = 42, so \\boxed{42}.",
                                     "42", "math"),
    "no_marker_last_number": ("I get 5, then 7, so 12.", "12", ""),
    "percent_equals_percent": ("\\boxed{50\\%}", "50", "math"),
    "dollar_amount": ("She paid $18 in total. The answer is $18.", "18", "math"),
    "bold_answer": ("The final answer is: **18**.", "18", "math"),
    "expression_string": ("\\boxed{x^2 + 1}", "x^2+1", "math"),
    "word_answer": ("\\boxed{Paris}", "paris", "Math"),
    "markdown_heading_not_hashes": ("#### Step 1\nWe add 2 and 3 to get 5.", "5", "math"),
    "repeated_bare_number": ("4 4", "4", "math"),
}


def _names(cases: dict) -> list:
    return [pytest.param(*case, id=name) for name, case in cases.items()]


def test_the_corpus_is_big_enough():
    assert len(HACKS) >= 15 and len(HONEST) >= 12


@pytest.mark.parametrize("completion, ground_truth, domain", _names(HACKS))
def test_a_hack_scores_zero(completion, ground_truth, domain):
    assert math_answer(completion, ground_truth=ground_truth, domain=domain) == 0.0


@pytest.mark.parametrize("completion, ground_truth, domain", _names(HONEST))
def test_an_honest_answer_scores_one(completion, ground_truth, domain):
    assert math_answer(completion, ground_truth=ground_truth, domain=domain) == 1.0


@pytest.mark.parametrize("text", [
    "\\boxed{41} and \\boxed{42}",
    "<answer>41</answer> The answer is 42.",
    "It could be 1, 2, 3, ..., 42",
    "\\boxed{4\u200b2}",
])
def test_a_completion_that_does_not_commit_has_no_answer(text):
    assert extract_answer(text) in (None, "1, 2, 3, ..., 42")  # the whole enumeration, never its last number


def test_the_cap_is_documented_and_an_answer_at_the_cap_still_counts():
    assert MAX_COMPLETION_CHARS == 20000
    at_cap = "x" * (MAX_COMPLETION_CHARS - len(" \\boxed{42}")) + " \\boxed{42}"
    assert len(at_cap) == MAX_COMPLETION_CHARS
    assert math_answer(at_cap, ground_truth="42", domain="math") == 1.0


@pytest.mark.parametrize("adversarial", [
    "\\boxed{" * (MAX_COMPLETION_CHARS // 7),  # unclosed boxes: one scan, not one per box
    "<answer>" * (MAX_COMPLETION_CHARS // 8),  # unclosed tags
    "\n" * (MAX_COMPLETION_CHARS - 10) + "#### 42 ",  # whitespace runs before the GSM8K marker
    " " * (MAX_COMPLETION_CHARS - 10) + "\n#### 4" + " " * 2,
    "the answer is " * (MAX_COMPLETION_CHARS // 14),
    "1" * MAX_COMPLETION_CHARS,
    "1/" * (MAX_COMPLETION_CHARS // 2),
    "1, " * (MAX_COMPLETION_CHARS // 3),
    "{" * (MAX_COMPLETION_CHARS // 2) + "}" * (MAX_COMPLETION_CHARS // 2),
    "\\boxed{" * 1000 + "42" + "}" * 1000,
    "\\boxed{1 " * 2000 + "}" * 2000,  # nested boxes that are not mere wrappers
    "<answer>" + "\\boxed{" * 1500 + "42" + "}" * 1500 + "</answer>",
    "\\boxed{" * 1200 + "42" + "}" * 1200 + " the answer is " + "\\boxed{" * 800 + "42" + "}" * 800,
])
def test_adversarial_inputs_under_the_cap_are_scored_quickly(adversarial):
    assert len(adversarial) <= MAX_COMPLETION_CHARS
    started = time.monotonic()
    score = math_answer(adversarial, ground_truth="42", domain="math")
    assert score in (0.0, 1.0)
    assert time.monotonic() - started < 2.0  # a guard against quadratic parsing (seconds at this size), not a timing check


def test_far_over_the_cap_is_refused_without_parsing():
    huge = "\\boxed{" * 2_000_000 + "42" + "}" * 2_000_000
    started = time.monotonic()
    assert math_answer(huge, ground_truth="42", domain="math") == 0.0
    assert time.monotonic() - started < 1.0  # refused by length, never parsed
