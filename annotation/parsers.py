"""The API's JSON parser: request bodies are untrusted documents, parsed by the same loader as
import lines (annotation/untrusted.py), so a body nested 100,000 deep, NaN, a 5,000-digit integer,
NUL or a lone surrogate answers 400 on every endpoint instead of a 500 (or a DataError later)."""
from __future__ import annotations

import codecs

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .untrusted import MAX_JSON_BYTES, JSONRejected, load_json, size_text


class UntrustedJSONParser(JSONParser):
    """DRF's JSONParser with load_json behind it. Reads at most MAX_JSON_BYTES + 1 bytes: a larger
    body is refused without being held."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read(MAX_JSON_BYTES + 1) if stream is not None else b""
        if len(raw) > MAX_JSON_BYTES:
            raise ParseError(f"JSON parse error - the body is larger than {size_text(MAX_JSON_BYTES)}")
        try:
            if codecs.lookup(encoding).name != "utf-8":
                raw = raw.decode(encoding)
            return load_json(raw)
        except (JSONRejected, UnicodeDecodeError, LookupError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
