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

Every line is untrusted: it is parsed by annotation.untrusted.load_json (no NUL, no lone
surrogates, no NaN/Infinity, bounded integers, depth and size) and read with a bounded reader, so a
line longer than MAX_LINE_BYTES is reported without being loaded. The limits below are documented
in README.md (Import).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .untrusted import MAX_JSON_BYTES, JSONRejected, load_json, size_text

ROLES = ("system", "user", "assistant")
DIFFICULTIES = ("easy", "medium", "hard")
ALLOWED_KEYS = {
    "prompt", "responses", "domain", "difficulty", "tags", "source", "external_id", "priority", "kind", "ground_truth",
}
KINDS = ("comparison", "ranking", "rewrite", "adversarial")
PRODUCTION_BAD_CASE = "production_bad_case"
RANKING_MIN, RANKING_MAX = 3, 8
MAX_TEXT = 200_000  # characters in a prompt message, a response or a ground truth
MAX_LINE_BYTES = MAX_JSON_BYTES  # one line of a JSONL file, in bytes, newline not counted
MAX_METADATA_BYTES = 64 * 1024  # a response's metadata, as compact UTF-8 JSON
MAX_TAGS = 50
MAX_TAG_CHARS = 64
MAX_PROMPT_MESSAGES = 200
READ_CHUNK = 64 * 1024


class LineError(ValueError):
    pass


@dataclass(frozen=True)
class LineTooLong:
    """Stands in for a line longer than the limit: the reader skipped it without keeping it, and
    parsing it raises LineError."""

    size: int
    limit: int

    def strip(self) -> LineTooLong:  # never blank: it is reported, not skipped
        return self


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
    if len(prompt) > MAX_PROMPT_MESSAGES:
        raise LineError(f"'prompt' has {len(prompt)} messages; the limit is {MAX_PROMPT_MESSAGES} (MAX_PROMPT_MESSAGES)")
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
    size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise LineError(
            f"response {index} 'metadata' is {size} bytes as JSON; the limit is {size_text(MAX_METADATA_BYTES)} "
            "(MAX_METADATA_BYTES)"
        )
    return ParsedResponse(
        text=_text(value.get("text"), f"response {index} text"),
        model_name=_short(value.get("model"), f"response {index} model", 200),
        metadata=metadata,
    )


def parse_json_object(raw: str | bytes | LineTooLong) -> dict:
    if isinstance(raw, LineTooLong):
        raise LineError(
            f"the line is longer than {size_text(raw.limit)} (MAX_LINE_BYTES); it was skipped unread"
        )
    body = raw.rstrip(b"\r\n" if isinstance(raw, bytes) else "\r\n")  # the limit is on the line, not its ending
    size = len(body) if isinstance(body, bytes) else len(body.encode("utf-8", "surrogatepass"))
    if size > MAX_LINE_BYTES:
        raise LineError(f"the line is {size} bytes; the limit is {size_text(MAX_LINE_BYTES)} (MAX_LINE_BYTES)")
    try:
        obj = load_json(body, max_bytes=MAX_LINE_BYTES)
    except JSONRejected as exc:
        raise LineError(str(exc)) from None
    if not isinstance(obj, dict):
        raise LineError("each line must be a JSON object")
    return obj


def parse_line(raw: str | bytes | LineTooLong) -> ParsedItem:
    return parse_item(parse_json_object(raw))


def parse_item(obj: dict) -> ParsedItem:
    """The item a line's object describes. `obj` comes from parse_json_object (load_json), which
    has already refused NUL, lone surrogates, NaN and giant numbers anywhere in it."""
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
    if len(tags) > MAX_TAGS:
        raise LineError(f"'tags' has {len(tags)} tags; the limit is {MAX_TAGS} (MAX_TAGS)")
    if any(len(t) > MAX_TAG_CHARS for t in tags):
        raise LineError(f"a tag is longer than {MAX_TAG_CHARS} characters (MAX_TAG_CHARS)")
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


def file_too_large(size: int, *, limit: int, setting: str) -> str | None:
    """The message for a file over its size limit (a per-file setting), or None."""
    if size <= limit:
        return None
    return f"the file is {size} bytes; the limit is {size_text(limit)} ({setting}). Nothing was read."


def _bounded_lines(fh, limit: int) -> Iterator[bytes | str | LineTooLong]:
    """Lines of a file object, each read with readline(limit + 2) (room for "\r\n"): a longer
    line is skipped in 64 KiB chunks and stands as LineTooLong, so it is never held whole (a 50 MB
    line costs at most `limit` bytes of memory, never an object graph). parse_json_object checks
    the exact size of what gets through."""
    while True:
        line = fh.readline(limit + 2)
        if not line:
            return
        newline = b"\n" if isinstance(line, bytes) else "\n"
        if len(line) <= limit or line.endswith(newline):
            yield line
            continue
        size = len(line)
        while not line.endswith(newline):
            line = fh.readline(READ_CHUNK)
            if not line:
                break
            size += len(line)
        yield LineTooLong(size=size, limit=limit)


def numbered_lines(
    lines: Iterable[str | bytes], *, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, str | bytes | LineTooLong]]:
    """(line number, raw line) for every non-blank line; numbers count blank lines too. A file
    object (anything with readline: an open file, an upload) is read with a bounded reader; a
    line over `max_line_bytes` comes as LineTooLong, which parse_line reports."""
    source = _bounded_lines(lines, max_line_bytes) if hasattr(lines, "readline") else lines
    for number, raw in enumerate(source, start=1):
        if isinstance(raw, (str, bytes)) and len(raw) > max_line_bytes + 2:  # lines held already; +2: "\r\n"
            size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
            raw = LineTooLong(size=size, limit=max_line_bytes)
        if raw.strip():
            yield number, raw
