"""A side-by-side, word-level diff of a bad response and its rewrite. Pure: no Django.

Built on difflib (stdlib). The result is plain segments; templates render them escaped, so model
text never becomes live HTML.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

# Words with their trailing whitespace: joining the tokens gives the text back exactly.
_TOKEN = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class Segment:
    text: str
    op: str  # equal | delete | insert | replace


@dataclass(frozen=True)
class SideBySide:
    old: list[Segment]
    new: list[Segment]
    words_removed: int
    words_added: int
    similarity: float  # difflib's ratio over words, 1 = unchanged

    @property
    def changed(self) -> bool:
        return self.words_removed > 0 or self.words_added > 0


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def side_by_side(old: str, new: str) -> SideBySide:
    a, b = tokens(old), tokens(new)
    # Compare words without their spacing, so re-wrapping a line is not a change.
    matcher = difflib.SequenceMatcher(None, [t.strip() for t in a], [t.strip() for t in b], autojunk=False)
    left: list[Segment] = []
    right: list[Segment] = []
    removed = added = 0
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if i2 > i1:
            left.append(Segment("".join(a[i1:i2]), op))
        if j2 > j1:
            right.append(Segment("".join(b[j1:j2]), op))
        if op != "equal":
            removed += sum(1 for t in a[i1:i2] if t.strip())
            added += sum(1 for t in b[j1:j2] if t.strip())
    return SideBySide(old=left, new=right, words_removed=removed, words_added=added, similarity=round(matcher.ratio(), 4))
