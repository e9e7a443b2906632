"""Checks for what comes from outside: JSON documents (import lines, API request bodies, JSON typed
into a form), text fields and the time an annotator's browser reports. One place, so the page, the
API, the CLI and the worker refuse exactly the same things. Pure: no Django.

What is refused, and why:
- NUL (U+0000): PostgreSQL refuses it in text and in jsonb, so the write fails with a DataError.
- lone surrogates (U+D800-U+DFFF): not encodable as UTF-8, so every page that renders them fails.
- NaN / Infinity (and numbers that overflow to infinity, such as 1e400): not JSON, and jsonb
  refuses them.
- integers of more than MAX_INT_DIGITS digits: Python refuses to parse integers above 4,300 digits
  with a ValueError (not a JSONDecodeError), and converting them costs quadratic time.
- nesting deeper than MAX_JSON_DEPTH: json's C scanner recurses once per level, so a document
  nested 100,000 deep raises RecursionError instead of a decode error.
- documents over MAX_JSON_BYTES or with more than MAX_JSON_VALUES values: parsing inflates JSON
  up to ~25 times into Python objects (a 50 MB metadata line peaked at 833 MB), so both are
  bounded before parsing.
"""
from __future__ import annotations

import json
import math
import re
import unicodedata

MAX_JSON_BYTES = 4 * 1024 * 1024  # one import line or one API request body
MAX_JSON_DEPTH = 32  # an item line uses 4 levels (line, responses, response, metadata)
MAX_INT_DIGITS = 20  # every 64-bit integer, signed or unsigned
MAX_JSON_VALUES = 100_000  # numbers, strings, lists, objects... in one document
MAX_TIME_SPENT_MS = 86_400_000  # 24 hours: an item left open longer is not a measurement

_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONRejected(ValueError):
    """A JSON document that cannot be stored or rendered; the message says why, for a person."""


def size_text(n: int) -> str:
    """A byte limit in words for error messages: 4 MiB, 64 KiB, 1000 bytes."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} bytes"


def text_problem(value: str) -> str | None:
    """Why this string cannot be stored in PostgreSQL or rendered as UTF-8; None when it can."""
    if "\x00" in value:
        return "contains a NUL character (U+0000), which cannot be stored"
    match = _SURROGATE.search(value)
    if match:
        return f"contains a lone surrogate (U+{ord(match.group()):04X}), which is not valid Unicode text"
    return None


# Characters that take no room on screen besides the categories below: Hangul fillers, braille
# blank, the combining grapheme joiner, variation selectors.
_INVISIBLE = {0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x034F} | set(range(0xFE00, 0xFE10)) | set(range(0xE0100, 0xE01F0))
# Cc control, Cf format (zero-width space/joiners U+200B-U+200F, U+2060-U+2064, BOM, bidi
# controls U+202A-U+202E and U+2066-U+2069), Cs surrogate, Cn unassigned, and combining marks
# (they decorate a visible character; alone they are not one).
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Cs", "Cn", "Mn", "Me"}
_SPACE_CATEGORIES = {"Zs", "Zl", "Zp"}


def visible_length(text: str) -> int:
    """The length of `text` as a reader sees it: invisible characters (zero-width, bidi
    controls, BOM, lone combining marks, fillers) count for nothing, and a run of whitespace of
    any kind counts as one space between words, none at the ends. For ordinary text this is
    len(text.strip()) with repeated spaces collapsed; a rationale of 300 zero-width characters
    is 0, however many code points it has."""
    count = 0
    pending_space = False
    for ch in text:
        category = unicodedata.category(ch)
        if ch.isspace() or category in _SPACE_CATEGORIES:
            pending_space = count > 0
        elif category in _INVISIBLE_CATEGORIES or ord(ch) in _INVISIBLE:
            continue
        else:
            count += 1 + pending_space
            pending_space = False
    return count


def time_spent_parse(raw) -> int:
    """Milliseconds on an item as a client reported them: a whole number from 0 to
    MAX_TIME_SPENT_MS. Missing or blank means 0 (not measured). The same rule for the API (its
    serializer field calls this) and the pages (form posts), so `inf`, `1e30` or 2**31 are refused
    alike instead of overflowing the integer column."""
    limits = f"a whole number of milliseconds from 0 to {MAX_TIME_SPENT_MS}"
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return 0
    if isinstance(raw, bool):
        raise ValueError(f"Time spent must be {limits}.")
    if isinstance(raw, float):
        if not raw.is_integer():
            raise ValueError(f"Time spent must be {limits}.")
        raw = int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        # As DRF's IntegerField: digits with an optional sign and an optional ".000" tail; no
        # exponents, no inf/nan, and short, so int() never sees thousands of digits.
        if len(text) > 32 or not re.fullmatch(r"[+-]?[0-9]+(\.0*)?", text):
            raise ValueError(f"Time spent must be {limits}.")
        raw = int(text.split(".")[0])
    if not isinstance(raw, int):
        raise ValueError(f"Time spent must be {limits}.")
    if not 0 <= raw <= MAX_TIME_SPENT_MS:
        raise ValueError(f"Time spent must be {limits}.")
    return raw


def _refuse_constant(name: str):
    raise JSONRejected(f"{name} is not a number JSON allows")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONRejected(f"an integer has more than {MAX_INT_DIGITS} digits (MAX_INT_DIGITS): {text[:12]}...")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONRejected(f"the number {text[:24]} is too large to store")
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=_bounded_int, parse_float=_finite_float)


# A JSON string token, exactly as the grammar has it (quote, then plain characters or escapes,
# then quote); unrolled so the regex engine does not backtrack on long strings.
_STRING_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(r"[\[\]{}]")
# How NUL or a lone surrogate can reach a decoded string: an escape (\u0000, \uD800-\uDFFF) or,
# in a str document, the raw character (raw NUL is refused by the strict decoder). A document
# with neither needs no walk; an escaped backslash before "u0000" only costs the walk.
_RISKY_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _shape_check(text: str, *, max_depth: int, max_values: int) -> None:
    """Refuse too many values or too deep a nesting before parsing: the parser would build every
    value first (up to ~25 times the document's size in Python objects) and recurse once per level.
    Counted on the document without its strings, so brackets and commas inside text do not count."""
    openers = text.count("[") + text.count("{")
    if openers <= max_depth and openers + text.count(",") < max_values:
        return  # counted with the strings in, an upper bound: already within both limits
    bare = _STRING_TOKEN.sub("", text) if '"' in text else text
    depth = 0
    # Bounded: a document under max_values has at most 2 * max_values brackets.
    for seen, bracket in enumerate(_BRACKET.finditer(bare)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > max_depth:
            raise JSONRejected(f"nested deeper than {max_depth} levels (MAX_JSON_DEPTH)")
        if seen > 2 * max_values:
            break
    if bare.count("[") + bare.count("{") + bare.count(",") + 1 > max_values:
        raise JSONRejected(f"more than {max_values} values (MAX_JSON_VALUES)")


def _where(path: list) -> str:
    out = ""
    for step in reversed(path):
        out += f"[{step}]" if isinstance(step, int) else (f".{step[:40]}" if out else step[:40])
    return f" at {out[:120]}" if out else ""


def _string_problem(node) -> tuple[list, str, str] | None:
    """(path reversed, "a string" or "a key", problem) for the first string or key that cannot be stored. Recursive:
    depth is already bounded by _shape_check."""
    if isinstance(node, str):
        problem = text_problem(node)
        return ([], "a string", problem) if problem else None
    if isinstance(node, dict):
        for key, child in node.items():
            problem = text_problem(key)
            if problem:
                return [], "a key", problem
            found = _string_problem(child)
            if found:
                found[0].append(key)
                return found
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found = _string_problem(child)
            if found:
                found[0].append(i)
                return found
    return None


def load_json(
    raw: str | bytes, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH,
    max_values: int = MAX_JSON_VALUES,
):
    """Parse one untrusted JSON document, or raise JSONRejected saying why. What it returns can
    be stored in PostgreSQL (text and jsonb) and rendered: no NUL, no lone surrogates, finite
    numbers, integers of at most MAX_INT_DIGITS digits, at most `max_depth` levels and
    `max_values` values."""
    size = len(raw) if isinstance(raw, (bytes, bytearray)) else len(raw.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise JSONRejected(f"larger than {size_text(max_bytes)} (MAX_JSON_BYTES)")
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONRejected(f"not valid UTF-8 (byte {exc.start + 1})") from None
    _shape_check(raw, max_depth=max_depth, max_values=max_values)
    try:
        value = _DECODER.decode(raw)
    except json.JSONDecodeError as exc:
        raise JSONRejected(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:  # cannot happen after _shape_check; kept so it never escapes as a crash
        raise JSONRejected(f"nested deeper than {max_depth} levels (MAX_JSON_DEPTH)") from None
    except JSONRejected:
        raise
    except ValueError as exc:  # any other refusal of the scanner must not escape as a crash
        raise JSONRejected(f"not valid JSON ({exc})") from None
    if not _RISKY_ESCAPE.search(raw) and not _SURROGATE.search(raw):
        return value
    found = _string_problem(value)
    if found:
        path, what, problem = found
        raise JSONRejected(f"{what}{_where(path)} {problem}")
    return value


def text_checked(value, *, required: bool, limit: int) -> tuple[str, str]:
    """A free text from a request, stripped, and what is wrong with it ("" when nothing): not a
    string, holding characters no column can store (text_problem), empty when required, too long."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        return "", "A text."
    problem = text_problem(value)
    if problem:
        return "", f"The text {problem}."
    if required and not value.strip():
        return "", "Required, and not empty."
    if len(value) > limit:
        return "", f"At most {limit} characters."
    return value.strip(), ""
