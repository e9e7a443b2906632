"""Rule-based RL rewards: right, wrong and not-applicable cases for each verifier (pure, no
database; the code verifier runs the sandbox)."""
from __future__ import annotations

import time

import pytest

from rewards.verifiers import (
    VERIFIERS,
    code_tests,
    extract_answer,
    extract_code,
    format_tags,
    math_answer,
    verify,
    verify_many,
)

GSM8K_TRUTH = ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
               "Altogether she sold 48+24 = <<48+24=72>>72 clips.\n#### 72")


@pytest.mark.parametrize("completion, ground_truth, domain, expected", [
    # right
    ("Adding them up, the total is \\boxed{42}.", "42", "math", 1.0),
    ("<answer>3/4</answer>", "0.75", "math", 1.0),
    ("The answer is 1,234.", "1234", "math", 1.0),
    ("The answer is $\\frac{3}{4}$.", "3/4", "math", 1.0),
    ("\\boxed{\\dfrac{-1}{2}}", "-0.5", "math", 1.0),
    ("Answer: -2.50", "-2.5", "math", 1.0),
    ("The answer is 42 apples.", "42", "math", 1.0),
    ("So x = 5.\n<answer>x = 5</answer>", "5", "math", 1.0),
    ("\\boxed{50\\%}", "50", "math", 1.0),
    ("48 + 24 = 72\n#### 72", GSM8K_TRUTH, "math", 1.0),
    ("I get 5, then 7, so 12.", "12", "", 1.0),  # no marker: the last number; no domain, numeric truth
    ("\\boxed{x^2 + 1}", "x^2+1", "math", 1.0),
    ("\\boxed{Paris}", "paris", "Math", 1.0),
    ("The answer is \\boxed{5}. Check: 5 + 1 = 6", "5", "math", 1.0),  # the marker beats the last number
    ("#### Step 1\nWe add 2 and 3 to get 5.", "5", "math", 1.0),  # a markdown heading is not GSM8K's ####
    ("<answer>The answer is 12.</answer>", "12", "maths", 1.0),
    # wrong
    ("\\boxed{41}", "42", "math", 0.0),
    ("\\boxed{\\frac{1}{3}}", "0.333", "math", 0.0),  # exact: 0.333 is not a third
    ("\\boxed{x^2}", "2", "math", 0.0),  # an expression is not its exponent
    ("I have no idea.", "7", "math", 0.0),
    ("The answer is 12, I think.\n#### 13", "12", "math", 0.0),  # #### outranks "answer is"
    ("The answer is between 3 and 4.", "3", "math", 0.0),
    ("The answer is 1e999999999.", "1", "math", 0.0),  # answered at once, not by building a huge number
    # not applicable
    ("12", "12", "history", None),  # a number under another domain is not ours to judge
    ("\\boxed{Paris}", "Paris", "", None),  # no domain and a word: not evidently math
    ("\\boxed{4}", None, "math", None),
    ("\\boxed{4}", "   ", "math", None),
    ("\\boxed{4}", "assert f(2) == 4", "code", None),
])
def test_math_answer(completion, ground_truth, domain, expected):
    assert math_answer(completion, ground_truth=ground_truth, domain=domain) == expected


@pytest.mark.parametrize("text, expected", [
    ("\\boxed{\\frac{1}{2}} and later \\boxed{7}", None),  # two different boxed answers commit to neither
    ("\\boxed{7} and later \\boxed{7.0}", "7.0"),  # the same value twice is one answer
    ("nested \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
    ("The final answer is: **18**.", "**18**"),
    ("value 3.5. done", "3.5"),
    ("in 2024-01 we had -3 apples", "-3"),
    ("no numbers at all", None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


ADD_TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\nassert add(0, 0) == 0"


@pytest.mark.parametrize("completion, expected", [
    ("Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nThis adds.", 1.0),
    ("def add(a, b):\n    return a + b", 1.0),  # no fence: the whole text is the code
    ("```text\nadd(1, 2) -> 3\n```\n```python\ndef add(a, b):\n    return a + b\n```", 1.0),
    ("```python\ndef add(a, b):\n    return a + b\n", 1.0),  # the token limit cut the closing fence
    ("```python\ndef add(a, b):\n    return a - b\n```", 0.0),
    ("```python\ndef add(a, b)\n    return a + b\n```", 0.0),  # syntax error
    ("```python\nimport sys\ndef add(a, b):\n    return 0\nsys.exit(0)\n```", 0.0),  # exits before the tests
    ("```python\nimport os\ndef add(a, b):\n    return 0\nos._exit(0)\n```", 0.0),
    (("```python\nimport urllib.request\nurllib.request.urlopen('http://example.com')\n"
      "def add(a, b):\n    return a + b\n```"), 0.0),  # reaches for the network
])
def test_code_tests(completion, expected):
    assert code_tests(completion, ground_truth=ADD_TESTS, domain="code", timeout_s=5) == expected


def test_an_infinite_loop_scores_zero_instead_of_hanging():
    completion = "```python\ndef add(a, b):\n    while True:\n        pass\n```"
    started = time.monotonic()
    assert code_tests(completion, ground_truth=ADD_TESTS, domain="coding", timeout_s=1.0) == 0.0
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize("ground_truth, domain", [
    (ADD_TESTS, "math"),
    (ADD_TESTS, ""),
    (None, "code"),
    ("O(n log n)", "code"),  # not Python
    ("x = 1", "coding"),  # Python, but it tests nothing
])
def test_code_tests_not_applicable(ground_truth, domain):
    assert code_tests("def add(a, b):\n    return a + b", ground_truth=ground_truth, domain=domain) is None


def test_unittest_style_tests_count_as_tests():
    tests = ("import unittest\nclass T(unittest.TestCase):\n    def test_add(self):\n"
             "        self.assertEqual(add(2, 2), 4)\nunittest.main(exit=False)")
    assert code_tests("def add(a, b):\n    return a + b", ground_truth=tests, domain="code") == 1.0


@pytest.mark.parametrize("completion, expected", [
    ("```py\nprint(1)\n```", "print(1)\n"),
    ("```\nfirst\n```\nand\n```\nsecond\n```", "second\n"),
    ("```python\nkeep\n```\n```bash\nrun it\n```", "keep\n"),
    ("no fences", "no fences"),
])
def test_extract_code(completion, expected):
    assert extract_code(completion) == expected


@pytest.mark.parametrize("completion, tags, expected", [
    ("<think>add them</think><answer>4</answer>", ("think", "answer"), 1.0),
    ("<think>\nstep\n</think>\nprose\n<answer>4</answer> trailing", ("think", "answer"), 1.0),
    ("<answer>4</answer>", ("think", "answer"), 0.5),
    ("<answer>4</answer><think>late</think>", ("think", "answer"), 0.5),  # out of order
    ("<think> </think><answer>4</answer>", ("think", "answer"), 0.5),  # empty
    ("<think>a</think><answer>4</answer><answer>5</answer>", ("think", "answer"), 0.5),  # repeated
    ("</answer>4<answer>", ("answer",), 0.0),  # closed before opened
    ("just 4", ("think", "answer"), 0.0),
    ("<answer>4</answer>", (), None),
])
def test_format_tags(completion, tags, expected):
    assert format_tags(completion, tags=tags) == expected


MATH_ROW = {"prompt": [{"role": "user", "content": "2+2?"}], "ground_truth": "4", "domain": "math"}
CODE_ROW = {"prompt": [{"role": "user", "content": "Write add."}], "ground_truth": ADD_TESTS, "domain": "code"}
CHAT_ROW = {"prompt": [{"role": "user", "content": "Hi"}], "ground_truth": None, "domain": "chat"}


def test_registry_holds_the_configurable_verifiers():
    assert sorted(VERIFIERS) == ["code", "format", "math"]


@pytest.mark.parametrize("name, completion, row, expected", [
    ("math", "<answer>4</answer>", MATH_ROW, 1.0),
    ("math", [{"role": "assistant", "content": "\\boxed{5}"}], MATH_ROW, 0.0),  # conversational completion
    ("math", "4", CHAT_ROW, None),
    ("code", "def add(a, b):\n    return a + b", CODE_ROW, 1.0),
    ("code", "def add(a, b):\n    return a + b", MATH_ROW, None),
    ("format", "<answer>4</answer>", CHAT_ROW, 1.0),
])
def test_verify_dispatches_on_the_row(name, completion, row, expected):
    assert verify(name, completion, row, format_tags=("answer",)) == expected


def test_format_without_tags_is_not_applicable():
    assert verify("format", "<answer>4</answer>", MATH_ROW) is None


def test_unknown_verifier_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: code, format, math"):
        verify("length", "text", MATH_ROW)
    with pytest.raises(ValueError, match="'length'"):
        verify_many(["math", "length"], ["x"], [MATH_ROW])


def test_verify_many_scores_a_batch_per_verifier():
    completions = ["<answer>4</answer>", "<answer>5</answer>", "def add(a, b):\n    return a + b",
                   "def add(a, b):\n    return a * b"]
    rows = [MATH_ROW, MATH_ROW, CODE_ROW, CODE_ROW]
    scores = verify_many(["math", "code", "format"], completions, rows, format_tags=("answer",), workers=2)
    assert scores == {
        "math": [1.0, 0.0, None, None],
        "code": [None, None, 1.0, 0.0],
        "format": [1.0, 1.0, 0.0, 0.0],
    }


def test_verify_many_needs_one_row_per_completion():
    with pytest.raises(ValueError, match="one row per completion"):
        verify_many(["math"], ["a", "b"], [MATH_ROW])
