"""Whatever a line holds, validation answers with a LineError or a parsed item, never a crash."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from annotation.importing import LineError, ParsedItem, parse_line

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
    try:
        assert isinstance(parse_line(raw), ParsedItem)
    except LineError as exc:
        assert str(exc)
