"""Export formats and majority aggregation (pure)."""
from __future__ import annotations

import pytest

from rewards.formats import STRENGTH_MARGIN, majority_vote, preference_row, prompt_as_text


@pytest.mark.parametrize("votes, expected", [
    ([("a", "clear"), ("a", "strong"), ("b", "slight")], ("a", "clear")),
    ([("a", "slight"), ("a", "strong"), ("a", "strong")], ("a", "strong")),
    ([("a", "clear"), ("b", "clear")], None),
    ([("tie", ""), ("tie", ""), ("a", "strong")], ("tie", "")),
    ([("both_bad", ""), ("b", "clear"), ("b", "slight")], ("b", "slight")),
    ([], None),
])
def test_majority_vote(votes, expected):
    assert majority_vote(votes) == expected


def test_strength_becomes_a_growing_margin():
    assert STRENGTH_MARGIN["slight"] < STRENGTH_MARGIN["clear"] < STRENGTH_MARGIN["strong"] == 1.0


def test_multi_turn_prompt_keeps_speakers_in_standard_format():
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye?"}]
    assert prompt_as_text(messages) == "User: Hi\n\nAssistant: Hello\n\nUser: Bye?"
    assert prompt_as_text(messages[:1]) == "Hi"
    row = preference_row(fmt="trl-conversational", messages=messages, chosen="c", rejected="r", strength="strong")
    assert row == {"prompt": messages, "chosen": [{"role": "assistant", "content": "c"}],
                   "rejected": [{"role": "assistant", "content": "r"}], "margin": 1.0,
                   "tag": "comparison", "flaw_type": None}


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown pair format"):
        preference_row(fmt="csv", messages=[{"role": "user", "content": "x"}], chosen="a", rejected="b", strength="clear")
