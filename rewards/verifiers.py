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
  1,234 == 1234), anything else as a normalised string. A GSM8K-style ground truth (a worked
  solution ending in "#### 72") is reduced to its final answer the same way.
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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

from .code_verifier import CodeVerdict, code_verdict

MATH_DOMAINS = frozenset({"math", "maths", "mathematics"})
CODE_DOMAINS = frozenset({"code", "coding"})

# A number token: thousands-separated, plain/decimal/scientific, or a bare decimal like .5. The
# look-behind keeps the minus of "2024-01" and the digits of "x2" from counting.
_NUMBER = r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+)"
_FRACTION = r"(?<![\w.])-?\d+\s*/\s*\d+(?![\d.])"
_LATEX_FRACTION = r"-?\\d?frac\{\s*(-?\d+)\s*\}\{\s*(-?\d+)\s*\}"
_NUMBER_TOKEN = re.compile(f"{_LATEX_FRACTION}|{_FRACTION}|{_NUMBER}")


# ---------------------------------------------------------------- math


def _boxed(text: str) -> list[str]:
    """Contents of every \\boxed{...} / \\fbox{...}, braces balanced (a regex cannot nest)."""
    found = []
    for match in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    found.append(text[start:i])
                    break
    return found


def extract_answer(text: str) -> str | None:
    """The final answer a completion commits to, as written (not yet normalised)."""
    boxed = _boxed(text)
    if boxed:
        return boxed[-1]
    tagged = re.findall(r"<answer>(.*?)</answer>", text, flags=re.DOTALL | re.IGNORECASE)
    if tagged:
        inner = tagged[-1]
        # "<answer>The answer is 42.</answer>": the tag is a container, look inside it once more.
        return _said(inner) or inner
    # GSM8K's "#### 72"; a markdown heading ("#### Step 1") starts with a letter and is not one.
    hashes = re.findall(r"^\s*####\s*([^\sA-Za-z#].*?)\s*$", text, flags=re.MULTILINE)
    if hashes:
        return hashes[-1]
    said = _said(text)
    if said is not None:
        return said
    numbers = list(_NUMBER_TOKEN.finditer(text))
    return numbers[-1].group(0) if numbers else None


def _said(text: str) -> str | None:
    """The last "answer is X" / "answer: X", up to the end of its sentence or line."""
    matches = re.findall(r"answer\s*(?:is|:|=)\s*:?\s*([^\n]+)", text, flags=re.IGNORECASE)
    if not matches:
        return None
    # A sentence ends at a period followed by a space or the end, not at a decimal point.
    return re.split(r"\.(?:\s|$)", matches[-1], maxsplit=1)[0].strip() or None


def _to_number(token: str) -> Fraction | None:
    token = token.strip()
    latex = re.fullmatch(_LATEX_FRACTION, token)
    try:
        if latex:
            value = Fraction(int(latex.group(1)), int(latex.group(2)))
            return -value if token.startswith("-") else value
        if re.fullmatch(r"-?\d+\s*/\s*\d+", token):
            numerator, denominator = token.split("/")
            return Fraction(int(numerator), int(denominator))
        if re.fullmatch(_NUMBER, token):
            exponent = re.search(r"[eE]([-+]?\d+)$", token)
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
    a variable name ("42 apples", "x = 5"); None when it is an expression or several numbers."""
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
    return _to_number(tokens[0].group(0).replace(" ", ""))


def _reference(ground_truth: str) -> str:
    """A ground truth's final answer: itself, or what its own markers point to (GSM8K's solutions
    end in "#### 72")."""
    if re.search(r"\\boxed|\\fbox|<answer>|^\s*####", ground_truth, flags=re.MULTILINE):
        return extract_answer(ground_truth) or ground_truth
    return ground_truth


def math_answer(completion: str, *, ground_truth: str | None, domain: str = "") -> float | None:
    """1.0 when the completion's final answer equals the ground truth, 0.0 when not; None when the
    prompt is not a math prompt with a ground truth."""
    if ground_truth is None or not ground_truth.strip():
        return None
    reference = _reference(ground_truth)
    domain = (domain or "").strip().lower()
    if domain not in MATH_DOMAINS and not (domain == "" and _to_number(_clean(reference)) is not None):
        return None
    answer = extract_answer(completion)
    if answer is None:
        return 0.0
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
