"""Validation of import lines (JSONL, one labelling item per line). Pure: no Django.

A line looks like:
    {"prompt": "text" | [{"role": "user", "content": "..."}, ...],
     "responses": ["text", {"text": "...", "model": "m", "metadata": {...}}],
     "kind": "comparison | ranking | rewrite | adversarial",   # optional, see below
     "domain": "coding", "difficulty": "easy|medium|hard", "tags": ["..."],
     "source": "production_bad_case", "external_id": "abc-1", "ground_truth": "42"}

The kind follows from the responses when it is not given: two make a comparison, 3-8 a ranking,
and one response with source `production_bad_case` a bad case for expert rewrite (with two or more
responses that source is only a label, as before). An adversarial
task (one good response to derive a flawed variant from) must say `"kind": "adversarial"`.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

ROLES = ("system", "user", "assistant")
DIFFICULTIES = ("easy", "medium", "hard")
ALLOWED_KEYS = {
    "prompt", "responses", "domain", "difficulty", "tags", "source", "external_id", "priority", "kind", "ground_truth",
}
KINDS = ("comparison", "ranking", "rewrite", "adversarial")
PRODUCTION_BAD_CASE = "production_bad_case"
RANKING_MIN, RANKING_MAX = 3, 8
MAX_TEXT = 200_000


class LineError(ValueError):
    pass


@dataclass
class ParsedResponse:
    text: str
    model_name: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass
class ParsedItem:
    messages: list[dict]
    responses: list[ParsedResponse]
    domain: str = ""
    difficulty: str = ""
    tags: list[str] = field(default_factory=list)
    source: str = ""
    external_id: str | None = None
    priority: int = 0
    kind: str = "comparison"
    ground_truth: str | None = None


def _text(value, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise LineError(f"{what} must be a non-empty string")
    if len(value) > MAX_TEXT:
        raise LineError(f"{what} is longer than {MAX_TEXT} characters")
    return value


def _short(value, what: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise LineError(f"'{what}' must be a string")
    if len(value) > limit:
        raise LineError(f"'{what}' is longer than {limit} characters")
    return value


def parse_messages(prompt) -> list[dict]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": _text(prompt, "'prompt'")}]
    if not isinstance(prompt, list) or not prompt:
        raise LineError("'prompt' must be a string or a non-empty list of messages")
    messages = []
    for i, message in enumerate(prompt):
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise LineError(f"prompt message {i + 1} must be an object with 'role' and 'content'")
        role = message.get("role")
        if role not in ROLES:
            raise LineError(f"prompt message {i + 1} has role {role!r}; use one of {', '.join(ROLES)}")
        messages.append({"role": role, "content": _text(message.get("content"), f"prompt message {i + 1} content")})
    if messages[-1]["role"] != "user":
        raise LineError("the last prompt message must be the user's turn")
    return messages


def parse_response(value, index: int) -> ParsedResponse:
    if isinstance(value, str):
        return ParsedResponse(text=_text(value, f"response {index}"))
    if not isinstance(value, dict):
        raise LineError(f"response {index} must be a string or an object with 'text'")
    unknown = set(value) - {"text", "model", "metadata"}
    if unknown:
        raise LineError(f"response {index} has unknown field(s): {', '.join(sorted(unknown))}")
    metadata = value.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise LineError(f"response {index} 'metadata' must be an object")
    return ParsedResponse(
        text=_text(value.get("text"), f"response {index} text"),
        model_name=_short(value.get("model"), f"response {index} model", 200),
        metadata=metadata,
    )


def parse_json_object(raw: str | bytes) -> dict:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise LineError("not valid UTF-8") from None
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LineError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise LineError("each line must be a JSON object")
    return obj


def parse_line(raw: str | bytes) -> ParsedItem:
    return parse_item(parse_json_object(raw))


def parse_item(obj: dict) -> ParsedItem:
    unknown = set(obj) - ALLOWED_KEYS
    if unknown:
        raise LineError(f"unknown field(s): {', '.join(sorted(unknown))}")
    if "prompt" not in obj:
        raise LineError("missing 'prompt'")
    responses = obj.get("responses")
    if not isinstance(responses, list) or not responses:
        raise LineError("'responses' must be a non-empty list of responses")
    source = _short(obj.get("source"), "source", 64)
    kind = _kind(obj.get("kind"), n=len(responses), source=source)
    parsed = [parse_response(r, i + 1) for i, r in enumerate(responses)]
    texts = [p.text for p in parsed]
    if len(set(texts)) != len(texts):
        first = next(i for i, t in enumerate(texts) if texts.index(t) != i)
        raise LineError(f"response {first + 1} repeats response {texts.index(texts[first]) + 1}")
    ground_truth = obj.get("ground_truth")
    if ground_truth is not None and not isinstance(ground_truth, str):
        raise LineError("'ground_truth' must be a string")
    difficulty = _short(obj.get("difficulty"), "difficulty", 16)
    if difficulty and difficulty not in DIFFICULTIES:
        raise LineError(f"'difficulty' must be one of {', '.join(DIFFICULTIES)}")
    tags = obj.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise LineError("'tags' must be a list of non-empty strings")
    external_id = obj.get("external_id")
    if external_id is not None:
        if isinstance(external_id, bool) or not isinstance(external_id, (str, int)):
            raise LineError("'external_id' must be a string or an integer")
        external_id = _short(str(external_id), "external_id", 200) or None
    priority = obj.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int) or not -100 <= priority <= 100:
        raise LineError("'priority' must be an integer from -100 to 100")
    return ParsedItem(
        messages=parse_messages(obj["prompt"]),
        responses=parsed,
        domain=_short(obj.get("domain"), "domain", 64),
        difficulty=difficulty,
        tags=tags,
        source=source,
        external_id=external_id,
        priority=priority,
        kind=kind,
        ground_truth=_short(ground_truth, "ground_truth", MAX_TEXT) or None,
    )


def _kind(value, *, n: int, source: str) -> str:
    """The line's item kind, given or inferred, checked against its number of responses."""
    if value is not None and value not in KINDS:
        raise LineError(f"'kind' must be one of {', '.join(KINDS)}")
    if source == PRODUCTION_BAD_CASE and n == 1:
        if value not in (None, "rewrite"):
            raise LineError("a production_bad_case line with one response is a bad case: kind rewrite")
        return "rewrite"
    if value is None:
        if n == 1:
            raise LineError("one response: set \"kind\": \"adversarial\" (a good response to derive a flawed "
                            "variant from) or \"source\": \"production_bad_case\" (a bad case to rewrite)")
        value = "comparison" if n == 2 else "ranking"
    if value == "rewrite":
        raise LineError("rewrite tasks come from bad cases: set \"source\": \"production_bad_case\"")
    expected = {"comparison": (2, 2), "ranking": (RANKING_MIN, RANKING_MAX), "adversarial": (1, 1)}[value]
    if not expected[0] <= n <= expected[1]:
        wanted = str(expected[0]) if expected[0] == expected[1] else f"{expected[0]} to {expected[1]}"
        raise LineError(f"a {value} line has {wanted} response(s), not {n}")
    return value


def numbered_lines(lines: Iterable[str | bytes]) -> Iterator[tuple[int, str | bytes]]:
    """(line number, raw line) for every non-blank line; numbers count blank lines too."""
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            yield number, raw
