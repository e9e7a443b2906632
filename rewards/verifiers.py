"""Rule-based rewards for RL runs: each verifier scores one completion in [0, 1], or returns None
("not applicable") for a prompt it does not cover, so the hybrid reward sums only the verifiers
that apply (TRL's GRPOTrainer ignores None rewards the same way). Pure: no Django.

Decisions, so a reward is predictable:
- math applies to domain "math" (also "maths", "mathematics") with a ground truth, and to prompts
  with no domain whose ground truth is a plain number. A number under another domain (a year in a
  "history" prompt) is left to the reward model: we do not know it is meant to be exact.
- math takes the answer from the strongest marker present, last occurrence: \\boxed{} beats
  <answer></answer>, which beats "#### X" (GSM8K), which beats "the answer is X"; with no marker,
  the last number in the text. Numbers compare exactly as rationals (0.75 == 3/4 == \\frac{3}{4},
  1,234 == 1234, 4.2e1 == 42, 50\\% == 50 but never 0.5), anything else as a normalised string. A
  GSM8K-style ground truth (a worked solution ending in "#### 72") is reduced to its final answer
  the same way (a ground truth is trusted; the rules below hold only for completions).
- math rewards only a completion that commits to ONE value (tests/rewards/test_redteam_math.py):
  * every answer it states must agree in value: each \\boxed{}, each <answer>, each "#### X" line
    and each "answer is X" that states a single value, wherever they are (a code block too). Two
    different boxes, or a boxed 41 beside "the answer is 42", score 0; the same value twice
    (\\boxed{42} ... \\boxed{42.0}) is fine, and a box that only wraps a box is that box.
  * an answer is one value: several numbers ("\\boxed{40, 41, 42}", "[40, 45]", "42 or 43",
    "between 40 and 45") or a number qualified by a symbol or word that changes what it says
    ("x > 41", "\\pm 42", "at least 42", "not 42", "approximately 42") is not the number. With no
    marker, the last number is taken together with the numbers chained to it by list or range
    separators ("1, 2, ..., 42", "40-45", "40 to 45", numbers on consecutive lines) and the
    qualifier right before them, so "it could be 1, 2, ..., 42" does not say 42.
  * digits are ASCII: "４２" (fullwidth) or "٤٢" is not the number 42 (no Unicode folding, so
    what is compared is what the ground truth spells). A completion holding an invisible format
    character (zero-width space or joiner, bidi override: Unicode category Cf) scores 0, since
    what we parse would not be what a reader sees (an override can show "24" as "42").
  * a completion over MAX_COMPLETION_CHARS (20,000) scores 0 without being parsed; below it the
    parsing is linear (one pass for nested boxes and tags), so no completion can stall the reward.
- code applies to domain "code"/"coding" when the ground truth is Python test code (it parses and
  contains an assert). The completion's last fenced block is the solution (the last ```python one
  if there is one); it runs in one sandbox and the tests in another, exchanging only data, and the
  verdict comes from the tests' side (rewards/grader.py): exit tricks, forged reports and objects
  that lie about equality score 0. Where the sandbox is weaker than required the verifier refuses
  (None) unless the run allows weaker isolation (rewards/code_verifier.py).
- format gives partial credit: the fraction of required tags found, in the required order, each
  exactly once as a <tag>...</tag> pair with something other than whitespace inside. Partial
  credit gives a small policy a gradient before it gets every tag right; repeating a tag does not
  help (a repeated tag counts as missing).
"""
from __future__ import annotations

import ast
import os
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

from .code_verifier import CodeVerdict, code_verdict

MATH_DOMAINS = frozenset({"math", "maths", "mathematics"})
CODE_DOMAINS = frozenset({"code", "coding"})

# Above this many characters a completion scores 0 for math with no parsing at all: no honest
# final answer needs it, and it bounds the time every regex below can take.
MAX_COMPLETION_CHARS = 20_000

# A number token: thousands-separated, plain/decimal/scientific, or a bare decimal like .5. Digits
# are ASCII only ([0-9], not \d, which in Python also matches "４" or "٤"). The look-behind keeps
# the minus of "2024-01" and the digits of "x2" from counting.
_NUMBER = r"(?<![\w.])-?(?:[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+)"
_FRACTION = r"(?<![\w.])-?[0-9]+\s*/\s*[0-9]+(?![0-9.])"
_LATEX_FRACTION = r"-?\\d?frac\{\s*(-?[0-9]+)\s*\}\{\s*(-?[0-9]+)\s*\}"
_NUMBER_TOKEN = re.compile(f"{_LATEX_FRACTION}|{_FRACTION}|{_NUMBER}")

# Words that make a stated number something other than the answer's value: a negation, a bound,
# an approximation, a hedge, an alternative. "The answer is at least 42" does not say 42.
_QUALIFIERS = frozenset("""
    not no never none nor or either neither except unless but
    least most more less fewer over under above below beyond exceeds exceed exceeding greater
    smaller larger bigger higher lower than within between up
    approximately approx about around roughly nearly almost circa close estimate estimated
    maybe perhaps possibly probably likely guess
    plus minus pm mp ge geq le leq gt lt ne neq sim simeq
""".split())
# Symbols with the same effect, written before a number: x > 41, ≥ 42, ~42, ±42.
_QUALIFIER_SYMBOLS = "<>≤≥≠≈~±∓"
# What may join numbers into one enumeration or range when there is no marker: "1, 2, ..., 42",
# "40-45", "40 to 45", "between 40 and 45", "42 or 43", numbers on consecutive lines.
_CHAIN = re.compile(
    r"[\s,;]*(?:(?:or|and|to|through|thru|till|until|&|-|–|—|~|\.\.\.|…|\\[lc]?dots|\\pm|±|\+/-)[\s,;$]*)*",
    flags=re.IGNORECASE)
_STATEMENT = re.compile(r"\banswer\s*(?:is\b|:|=)\s*:?\s*((?:[^\n.]|\.(?!\s|$))+)", flags=re.IGNORECASE)


# ---------------------------------------------------------------- math


def _boxed(text: str) -> list[str]:
    """Contents of every \\boxed{...} / \\fbox{...}, braces balanced, in order of opening; a box that
    only wraps another box ("\\boxed{\\boxed{42}}") is that box. One pass with a stack (a regex cannot
    nest, and rescanning from every opening is quadratic)."""
    found: list[tuple[int, str]] = []
    stack: list[tuple[bool, int, int]] = []
    last: tuple[int, int] | None = None  # the box closed last: where it opened, where its content ends
    blank = re.compile(r"[\s$.]*")
    for match in re.finditer(r"\\(?:boxed|fbox)\s*\{|[{}]", text):
        if match.group(0) != "}":
            stack.append((match.group(0) != "{", match.start(), match.end()))
            continue
        if not stack:
            continue
        is_box, opened, start = stack.pop()
        if not is_box:
            continue
        end = match.start()
        wraps = (last is not None and last[0] >= start and blank.match(text, start, last[0]).end() == last[0]
                 and blank.match(text, last[1] + 1, end).end() == end)
        if not wraps:
            found.append((opened, text[start:end]))
        last = (opened, end)
    return [content for _, content in sorted(found)]


def _tagged(text: str) -> list[str]:
    """Contents of every <answer>...</answer>, in one pass (an unclosed tag is not an answer)."""
    found, start = [], None
    for match in re.finditer(r"<(/?)answer>", text, flags=re.IGNORECASE):
        if not match.group(1) and start is None:
            start = match.end()
        elif match.group(1) and start is not None:
            found.append(text[start:match.start()])
            start = None
    return found


def _hashes(text: str) -> list[str]:
    """GSM8K's "#### 72" lines; a markdown heading ("#### Step 1") starts with a letter and is not one."""
    return [m.strip() for m in re.findall(r"^[ \t]*####[ \t]*([^\sA-Za-z#][^\n]*)", text, flags=re.MULTILINE)]


def _statements(text: str) -> list[str]:
    """Every "answer is X" / "answer: X", up to the end of its sentence or line. A sentence ends at a
    period followed by a space or the end, not at a decimal point."""
    return [s.strip() for s in _STATEMENT.findall(text) if s.strip()]


def _said(text: str) -> str | None:
    """The last "answer is X" / "answer: X"."""
    statements = _statements(text)
    return statements[-1] if statements else None


def _unbox(answer: str) -> str:
    """An answer without the \\boxed{} (or $\\boxed{}$) that wraps all of it: "\\boxed{\\boxed{42}}" is 42.
    Braces are matched once, so peeling many layers stays linear."""
    opener = re.compile(r"\s*\$*\s*\\(?:boxed|fbox)\s*\{")
    if not opener.match(answer):
        return answer
    closing: dict[int, int] = {}
    stack: list[int] = []
    for brace in re.finditer(r"[{}]", answer):
        if brace.group(0) == "{":
            stack.append(brace.start())
        elif stack:
            closing[stack.pop()] = brace.start()
    low, high = 0, len(answer)
    while (match := opener.match(answer, low, high)):
        close = closing.get(match.end() - 1)
        if close is None or close >= high or not re.compile(r"\s*\$*\s*\.?\s*").fullmatch(answer, close + 1, high):
            break  # "\\boxed{1}\\boxed{2}": the first box does not wrap everything
        low, high = match.end(), close
    return answer[low:high]


def _last_numbers(text: str) -> str | None:
    """With no marker: the last number, together with every number chained to it as an enumeration
    or range ("1, 2, ..., 42", "40 to 45", "42 or 43") and a qualifier right before or after them
    ("x > 41", "at least 42", "42 maybe"), so that what is compared is what the text says, not its last token."""
    numbers = list(_NUMBER_TOKEN.finditer(text))
    if not numbers:
        return None
    first = len(numbers) - 1
    while first > 0 and _CHAIN.fullmatch(text, numbers[first - 1].end(), numbers[first].start()):
        first -= 1
    chain = numbers[first:]
    if len({_to_number(m.group(0).replace(" ", "")) for m in chain}) == 1:
        chain = chain[-1:]  # the same number repeated ("4 4") is still one value
    start, end = chain[0].start(), chain[-1].end()
    before = re.search(r"(?:([" + _QUALIFIER_SYMBOLS + r"])|\\?([A-Za-z]+))[\s$:=]*\Z", text[max(0, start - 40):start])
    if before and (before.group(1) or before.group(2).lower() in _QUALIFIERS):
        start -= len(before.group(0))
    after = re.compile(r"[ \t$]*([A-Za-z]+)(?:[ \t]+([A-Za-z]+))?").match(text, end, end + 40)  # "42 at most"
    if after and _QUALIFIERS.intersection(word.lower() for word in after.groups() if word):
        end = after.end()
    return text[start:end]


def _strongest(text: str) -> tuple[str | None, list[str]]:
    """The answer the strongest marker gives, last occurrence (\\boxed{} beats <answer></answer>,
    which beats "#### X", which beats "answer is X", which beats the last number), and every answer
    the completion states anywhere (all markers, and each "answer is" that states one value)."""
    boxes = _boxed(text)
    tagged = [_said(inner) or inner for inner in _tagged(text)]  # the tag is a container: look inside once more
    hashes = _hashes(text)
    statements = _statements(text)
    formal = boxes + tagged + hashes
    chosen = (boxes or tagged or hashes or statements or [None])[-1]
    if chosen is None:
        chosen = _last_numbers(text)
    # An "answer is" phrase with no single value in it ("the answer is not obvious") is prose.
    stated = formal + [s for s in statements if _value(_unbox(s)) is not None]
    return chosen, stated + ([chosen] if chosen is not None else [])


def _key(answer: str) -> tuple[str, object]:
    """What an answer says, for comparing answers to each other: its value, else its text."""
    answer = _unbox(answer)
    value = _value(answer)
    return ("value", value) if value is not None else ("text", _clean(answer))


def extract_answer(text: str) -> str | None:
    """The final answer a completion commits to, as written (not yet normalised); None when it
    commits to none: no answer, markers that state different values, or invisible characters."""
    if any(unicodedata.category(char) == "Cf" for char in text):
        return None  # zero-width and bidi controls: what we parse would not be what a reader sees
    chosen, stated = _strongest(text)
    if chosen is None:
        return None
    committed = _key(chosen)
    if any(_key(answer) != committed for answer in stated):  # stops at the first disagreement
        return None
    return chosen


def _to_number(token: str) -> Fraction | None:
    token = token.strip()
    latex = re.fullmatch(_LATEX_FRACTION, token)
    try:
        if latex:
            value = Fraction(int(latex.group(1)), int(latex.group(2)))
            return -value if token.startswith("-") else value
        if re.fullmatch(r"-?[0-9]+\s*/\s*[0-9]+", token):
            numerator, denominator = token.split("/")
            return Fraction(int(numerator), int(denominator))
        if re.fullmatch(_NUMBER, token):
            exponent = re.search(r"[eE]([-+]?[0-9]+)$", token)
            if exponent and abs(int(exponent.group(1))) > 1000:
                return None  # 1e999999999 as an exact rational would take all the memory there is
            return Fraction(token.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None
    return None


def _clean(answer: str) -> str:
    """Strip what does not change the value: markdown, LaTeX spacing and wrappers, $, %, the final
    period, spaces."""
    text = answer.strip()
    text = re.sub(r"\\text\{([^}]*)\}", r"\1", text)
    text = re.sub(r"\\(?:left|right|displaystyle|!|,|;|:|\s)", "", text)
    text = text.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    text = text.replace("**", "").replace("__", "").replace("`", "")
    text = re.sub(r"\s+", "", text).rstrip(".").lower()
    return text


def _value(answer: str) -> Fraction | None:
    """The number an answer states: the whole of it, or its only number when the rest is words or
    a variable name ("42 apples", "x = 5"); None when it is an expression, several numbers, or a
    number qualified by a word or symbol that changes what it says ("at least 42", "x > 41")."""
    cleaned = _clean(answer)
    whole = _to_number(cleaned)
    if whole is not None:
        return whole
    spaced = re.sub(r"\\(?:text|mathrm)\{([^}]*)\}", r" \1 ", answer)
    spaced = spaced.replace("$", " ").replace("**", " ").replace("%", " ")
    tokens = list(_NUMBER_TOKEN.finditer(spaced))
    if len(tokens) != 1:
        return None
    rest = spaced[: tokens[0].start()] + spaced[tokens[0].end():]
    if not re.fullmatch(r"[\sA-Za-z=:.,]*", rest):
        return None
    if any(word.lower() in _QUALIFIERS for word in re.findall(r"[A-Za-z]+", rest)):
        return None
    return _to_number(tokens[0].group(0).replace(" ", ""))


def _reference(ground_truth: str) -> str:
    """A ground truth's final answer: itself, or what its own strongest marker points to (GSM8K's
    solutions end in "#### 72"). A ground truth is trusted: it is not held to one stated value."""
    if re.search(r"\\boxed|\\fbox|<answer>|^[ \t]*####", ground_truth, flags=re.MULTILINE):
        return _strongest(ground_truth)[0] or ground_truth
    return ground_truth


def math_answer(completion: str, *, ground_truth: str | None, domain: str = "") -> float | None:
    """1.0 when the completion commits to one final answer and it equals the ground truth, 0.0 when
    not; None when the prompt is not a math prompt with a ground truth."""
    if ground_truth is None or not ground_truth.strip():
        return None
    reference = _unbox(_reference(ground_truth))
    domain = (domain or "").strip().lower()
    if domain not in MATH_DOMAINS and not (domain == "" and _to_number(_clean(reference)) is not None):
        return None
    if len(completion) > MAX_COMPLETION_CHARS:
        return 0.0
    answer = extract_answer(completion)
    if answer is None:
        return 0.0
    answer = _unbox(answer)
    if _clean(answer) == _clean(reference):
        return 1.0
    expected, got = _value(reference), _value(answer)
    return 1.0 if expected is not None and got is not None and expected == got else 0.0


# ---------------------------------------------------------------- code


def extract_code(completion: str) -> str:
    """The solution in a completion: the last ```python block, else the last fenced block of any
    kind, else the whole text. A fence left open by the token limit runs to the end."""
    blocks = re.findall(r"```([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", completion, flags=re.DOTALL)
    if not blocks:
        return completion
    python = [body for language, body in blocks if language.lower() in ("python", "py", "python3")]
    return (python or [body for _, body in blocks])[-1]


def is_python_tests(ground_truth: str | None) -> bool:
    """Whether a ground truth is Python test code: it parses and asserts something (an assert
    statement or a unittest assert* call)."""
    if not ground_truth or not ground_truth.strip():
        return False
    try:
        tree = ast.parse(ground_truth)
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr.startswith("assert"):
            return True
    return False


def code_tests(
    completion: str, *, ground_truth: str | None, domain: str = "", timeout_s: float = 5.0, memory_mb: int = 256,
    allow_weak_sandbox: bool = False,
) -> float | None:
    """1.0 when the completion's code passes the ground-truth tests, 0.0 when it fails, crashes,
    hangs past `timeout_s`, breaks the grading protocol or reaches for the network; None when the
    prompt is not a code prompt with Python tests, or when the sandbox here is weaker than
    required (see rewards/code_verifier.py; the reason is in code_verdict)."""
    if (domain or "").strip().lower() not in CODE_DOMAINS or not is_python_tests(ground_truth):
        return None
    assert ground_truth is not None  # is_python_tests said so; for the type checker
    return code_verdict(extract_code(completion), ground_truth, timeout_s=timeout_s, memory_mb=memory_mb,
                        allow_weak_sandbox=allow_weak_sandbox).score


def code_verdict_of(completion: str, row: Mapping, *, timeout_s: float = 5.0, memory_mb: int = 256,
                    allow_weak_sandbox: bool = False) -> CodeVerdict | None:
    """The code verifier's whole verdict for one completion (score, reason, refusal, suspicious
    patterns); None when the row is not a code prompt with Python tests."""
    ground_truth = row.get("ground_truth")
    if (row.get("domain") or "").strip().lower() not in CODE_DOMAINS or not is_python_tests(ground_truth):
        return None
    return code_verdict(extract_code(completion), ground_truth, timeout_s=timeout_s, memory_mb=memory_mb,
                        allow_weak_sandbox=allow_weak_sandbox)


# ---------------------------------------------------------------- format


def format_tags(completion: str, *, tags: Sequence[str]) -> float | None:
    """The fraction of required tags present, in order, each once as a non-empty <tag>...</tag>
    pair; None when no tags are required."""
    if not tags:
        return None
    found, position = 0, 0
    for tag in tags:
        name = re.escape(tag)
        opens = re.findall(f"<{name}>", completion)
        closes = re.findall(f"</{name}>", completion)
        if len(opens) != 1 or len(closes) != 1:
            continue  # missing, or repeated: neither earns the tag
        match = re.compile(f"<{name}>(.*?)</{name}>", flags=re.DOTALL).search(completion, position)
        if match is None or not match.group(1).strip():
            continue  # closed before opened, before the previous tag, or empty
        found += 1
        position = match.end()
    return found / len(tags)


# ---------------------------------------------------------------- registry


def completion_text(completion: str | Sequence[Mapping]) -> str:
    """A completion as text: TRL passes conversational completions as a message list."""
    if isinstance(completion, str):
        return completion
    return "".join(str(m.get("content") or "") for m in completion if m.get("role", "assistant") == "assistant")


Verifier = Callable[..., float | None]


def _math(completion: str, row: Mapping, **_: object) -> float | None:
    return math_answer(completion, ground_truth=row.get("ground_truth"), domain=row.get("domain") or "")


def _code(completion: str, row: Mapping, *, timeout_s: float = 5.0, memory_mb: int = 256,
          allow_weak_sandbox: bool = False, **_: object) -> float | None:
    return code_tests(completion, ground_truth=row.get("ground_truth"), domain=row.get("domain") or "",
                      timeout_s=timeout_s, memory_mb=memory_mb, allow_weak_sandbox=allow_weak_sandbox)


def _format(completion: str, row: Mapping, **options: object) -> float | None:
    return format_tags(completion, tags=options.get("format_tags") or ())  # type: ignore[arg-type]


# Uniform signature: (completion, row, *, format_tags, timeout_s, memory_mb) -> float | None.
VERIFIERS: dict[str, Verifier] = {"math": _math, "code": _code, "format": _format}


def _check_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in VERIFIERS]
    if unknown:
        raise ValueError(f"Unknown verifier(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(VERIFIERS))}")


def verify(
    name: str, completion: str | Sequence[Mapping], row: Mapping, *, format_tags: Sequence[str] = (),
    timeout_s: float = 5.0, memory_mb: int = 256,
) -> float | None:
    """Score one completion of a TRL prompt-only row ({"prompt", "ground_truth", "domain"})."""
    _check_names([name])
    return VERIFIERS[name](completion_text(completion), row, format_tags=format_tags,
                           timeout_s=timeout_s, memory_mb=memory_mb)


def verify_many(
    names: Sequence[str], completions: Sequence[str | Sequence[Mapping]], rows: Sequence[Mapping], *,
    format_tags: Sequence[str] = (), timeout_s: float = 5.0, memory_mb: int = 256, workers: int | None = None,
) -> dict[str, list[float | None]]:
    """Score a batch: completions[i] answers rows[i] (GRPO repeats a row per generation). Sandbox
    runs go `workers` at a time (default: the CPU count, at most 8), since each is its own process."""
    _check_names(names)
    if len(completions) != len(rows):
        raise ValueError(f"{len(completions)} completions but {len(rows)} rows; give one row per completion")
    texts = [completion_text(c) for c in completions]
    jobs = [(name, i) for name in names for i in range(len(texts))]

    def score(job: tuple[str, int]) -> float | None:
        name, i = job
        return VERIFIERS[name](texts[i], rows[i], format_tags=format_tags, timeout_s=timeout_s, memory_mb=memory_mb)

    workers = workers or min(8, os.cpu_count() or 1)
    if "code" in names and workers > 1 and len(texts) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            scores = list(pool.map(score, jobs))
    else:
        scores = [score(job) for job in jobs]
    out: dict[str, list[float | None]] = {name: [] for name in names}
    for (name, _), value in zip(jobs, scores, strict=True):
        out[name].append(value)
    return out
