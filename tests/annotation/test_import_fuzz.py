"""Whatever a line holds, validation answers with a LineError or a parsed item, never a crash;
and what it accepts PostgreSQL stores and a page renders. Fuzz counts are printed at the end."""
from __future__ import annotations

import json
import math
from collections import Counter

import pytest
from django.db import transaction
from django.template import Context, Template
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from annotation.importing import LineError, ParsedItem, parse_json_object, parse_line
from annotation.models import Prompt, Response
from annotation.services.imports import items_create
from annotation.untrusted import JSONRejected, load_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
near_items = st.fixed_dictionaries(
    {"prompt": json_values | st.text(min_size=1), "responses": st.lists(json_values | st.text(min_size=1), max_size=3)},
    optional={"domain": json_values, "tags": json_values, "external_id": json_values, "difficulty": json_values, "priority": json_values},
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(near_items.map(json.dumps), json_values.map(json.dumps), st.binary(max_size=60)))
def test_parse_line_never_crashes(raw):
    FUZZ_COUNTS["near_items"] += 1
    _validate(raw)  # an item that is storable, or a LineError with a message


# ---------------------------------------------------------------- hostile unicode and hostile JSON
#
# The guarantee: the validator accepts a line, and everything it returns can be stored in
# PostgreSQL (no NUL) and rendered (encodes as UTF-8, numbers finite), or it raises LineError with
# a message. Nothing else, ever. The last test stores what was accepted in PostgreSQL for real.

# Examples run per test, printed at the end of the module (see report_fuzz_counts) so the numbers
# can be quoted; `--hypothesis-show-statistics` gives hypothesis's own view.
FUZZ_COUNTS: Counter[str] = Counter()

HOSTILE_CHARS = [
    "\ud800", "\udbff", "\udc00", "\udfff",  # lone surrogates, both halves
    "\x00",  # NUL: PostgreSQL refuses it in text and jsonb
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",  # bidi
    "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\ufeff",  # zero-width
    "\u0301", "\u0336", "\u20dd", "\u034f",  # combining marks
    "\U0001F600", "\U00010348", "\U0010FFFF", "\U0001F469\u200d\U0001F4BB",  # 4-byte characters
    "\x1b", "\r", "\u2028", "<", "&", '"', "\\",
]
hostile_text = st.lists(
    st.sampled_from(HOSTILE_CHARS) | st.characters(exclude_categories=()), min_size=0, max_size=12,
).map("".join)
# Raw JSON tokens json.dumps cannot produce: constants, overflowing numbers, giant integers,
# escaped surrogates and NUL, and nesting from shallow to far past the recursion limit.
hostile_tokens = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "1E309", "0.0", "-0", "1e-400"]),
    st.integers(1, 6000).map(lambda n: "9" * n),
    st.integers(1, 6000).map(lambda n: "-" + "1" * n),
    st.sampled_from(['"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '"a\\u0000b"', '{"\\u0000": 1}', '{"\\ud83d": 2}',
                     '"\\ud83d\\ude00"']),
    st.integers(1, 150_000).map(lambda d: "[" * d + "]" * d),
    st.integers(1, 5_000).map(lambda d: '{"a":' * d + "1" + "}" * d),
    st.integers(1, 60).map(lambda d: "[" * d + '"x"' + "]" * d),
)


# Unusual but storable: bidi, zero-width, combining, 4-byte, any character but NUL and surrogates;
# and numbers and nesting within the limits. Mixed with the hostile ones so that both outcomes,
# accepted and refused, occur often.
_SAFE_CHARS = [c for c in HOSTILE_CHARS if c != "\x00" and not any(0xD800 <= ord(x) <= 0xDFFF for x in c)]
plausible_text = st.lists(
    st.sampled_from(_SAFE_CHARS) | st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
    min_size=1, max_size=12,
).map("".join)
maybe_text = plausible_text | hostile_text
plausible_tokens = st.one_of(
    st.integers(-(10**19), 10**19).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
    st.integers(1, 30).map(lambda d: "[" * d + "]" * d),
    st.sampled_from(['"\\ud83d\\ude00"', '"\\u202e"', "true", "null", '{"a": [1, 2.5, "x"]}']),
)
maybe_tokens = plausible_tokens | hostile_tokens


def _hostile_line(prompt: str, text: str, key: str, token: str, tag: str) -> str:
    """A line that is valid but for what the strategies put in: texts and keys through json.dumps
    (surrogates become \\udXXX escapes), the token raw inside response metadata."""
    head = json.dumps({"prompt": prompt or "p", "tags": [tag or "t"]})[:-1]
    meta = "{" + json.dumps(key or "k") + ": " + token + "}"
    return head + ', "responses": [' + json.dumps(text or "a") + ', {"text": "b", "metadata": ' + meta + "}]}"


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield key
            yield from _strings(child)
    elif isinstance(value, list):
        for child in value:
            yield from _strings(child)


def assert_storable(item: ParsedItem) -> None:
    """What PostgreSQL and the pages need: UTF-8 text without NUL, JSON with finite numbers."""
    values = [item.messages, item.domain, item.difficulty, item.tags, item.source, item.external_id or "",
              item.ground_truth or "", [[r.text, r.model_name, r.metadata] for r in item.responses]]
    for text in _strings(values):
        text.encode("utf-8")
        assert "\x00" not in text
    for response in item.responses:
        json.dumps(response.metadata, allow_nan=False)
        for number in _numbers(response.metadata):
            assert math.isfinite(number)


def _numbers(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value
    elif isinstance(value, dict):
        for child in value.values():
            yield from _numbers(child)
    elif isinstance(value, list):
        for child in value:
            yield from _numbers(child)


def _validate(raw) -> ParsedItem | None:
    """parse_line's outcome: the item, or None after a LineError with a message. Any other
    exception escapes and fails the test."""
    try:
        item = parse_line(raw)
    except LineError as exc:
        assert str(exc)
        return None
    assert_storable(item)
    return item


@pytest.fixture(scope="session", autouse=True)
def report_fuzz_counts(request):  # session: pytest-django reorders tests across modules
    yield
    line = "fuzz examples run: " + ", ".join(f"{name}={count}" for name, count in sorted(FUZZ_COUNTS.items()))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():  # shown without -s, like capsys.disabled()
        print(f"\n{line}")


def _unstorable_in_json(value: str) -> bool:
    """A NUL or a lone surrogate in what the line carries. The strings go in through json.dumps, so
    a high surrogate followed by a low one is an escaped pair that decodes to one valid character
    (U+10000 and up): judged after the round trip, as the validator sees it."""
    decoded = json.loads(json.dumps(value))
    return "\x00" in decoded or any(0xD800 <= ord(ch) <= 0xDFFF for ch in decoded)


@settings(max_examples=400, deadline=None)
@given(prompt=maybe_text, text=maybe_text, key=maybe_text, token=maybe_tokens, tag=maybe_text)
@example(prompt="", text="", key="", token="1", tag="\ud800\udc00")  # a pair: one valid character, accepted
@example(prompt="", text="", key="", token="1", tag="\udc00\ud800")  # reversed: two lone surrogates, refused
def test_hostile_lines_are_accepted_storable_or_refused_with_a_message(prompt, text, key, token, tag):
    FUZZ_COUNTS["hostile_lines"] += 1
    raw = _hostile_line(prompt, text, key, token, tag)
    item = _validate(raw)
    bad_text = any(_unstorable_in_json(s) for s in (prompt, text, key, tag))
    if bad_text:
        assert item is None, "a NUL or a lone surrogate was accepted"
    if item is not None:
        FUZZ_COUNTS["hostile_lines_accepted"] += 1
    # The same line as UTF-8 bytes (what the CLI and the worker read), when it can be encoded.
    try:
        encoded = raw.encode("utf-8")
    except UnicodeEncodeError:
        return
    assert (_validate(encoded) is None) == (item is None)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from('[]{}",:0123456789.eE-+tfalsenuNIiny\\u \x00\ud800'), max_size=80)
       | st.binary(max_size=80) | hostile_tokens)
def test_load_json_refuses_with_jsonrejected_or_returns_storable_json(raw):
    """The loader behind import lines and API bodies, on arbitrary near-JSON."""
    FUZZ_COUNTS["load_json"] += 1
    try:
        value = load_json(raw)
    except JSONRejected as exc:
        assert str(exc)
        return
    for text in _strings(value):
        text.encode("utf-8")
        assert "\x00" not in text
    json.dumps(value, allow_nan=False)


@pytest.mark.django_db
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=maybe_text, text=maybe_text, key=maybe_text, token=maybe_tokens, tag=maybe_text)
def test_what_the_validator_accepts_postgresql_stores_and_a_page_renders(project, prompt, text, key, token, tag):
    FUZZ_COUNTS["stored_in_postgresql"] += 1
    item = _validate(_hostile_line(prompt, text, key, token, tag))
    if item is None:
        return
    FUZZ_COUNTS["stored_in_postgresql_accepted"] += 1
    with transaction.atomic():
        items_create(project=project, batch=[item])
        stored = Prompt.objects.filter(project=project).latest("pk")
        responses = list(Response.objects.filter(prompt=stored).order_by("pk").values_list("text", "metadata"))
        html = Template("{{ m }}{% for r in rs %}{{ r.0 }}{{ r.1 }}{% endfor %}{{ t }}").render(
            Context({"m": stored.messages[0]["content"], "rs": responses, "t": stored.tags})
        )
        html.encode("utf-8")
        assert stored.messages == item.messages and [r[0] for r in responses] == [r.text for r in item.responses]
        transaction.set_rollback(True)  # each example starts from the same empty project


def test_parse_json_object_names_the_limit_for_an_over_long_line():
    with pytest.raises(LineError, match="MAX_LINE_BYTES"):
        parse_json_object(b'{"prompt": "' + b"x" * (4 * 1024 * 1024) + b'"}')
