"""Rubrics per behaviour dimension, written in the behaviour spec. Pure: no Django.

A rubric is a Markdown heading naming the dimension (a prompt's domain, as the behavioural suite
groups them; `general` for prompts without one), followed by its checks as a list: what a good
answer does, one check per item. A heading without a dimension is the rubric for every dimension
that has none of its own.

    ## Rubric: math
    - States the final answer plainly.
    - Shows the working that leads to it.

    ## Rubric
    - Answers the question that was asked.

Lines under a rubric heading that are not list items (an explanation) are kept out of the checks;
an indented line continues the check above it. The rubric ends at the next heading.

Written by hand rather than with a Markdown parser: the spec's renderer (frontend.markdown) turns
Markdown into HTML, and what is needed here is the line number of each problem, which a parse tree
does not keep.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_CHECKS = 12
MAX_CHECK_CHARS = 300
MAX_DIMENSION_CHARS = 64
ANY = ""  # the key of the rubric for every dimension without its own

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_RUBRIC = re.compile(r"^rubric(?:[ \t]*:[ \t]*(.*))?$", re.IGNORECASE)
_RUBRIC_LIKE = re.compile(r"^rubrics?\b", re.IGNORECASE)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# A check is a top-level list item (at most one space before its marker); an item indented more
# is nested under the check above and continues it, as does an indented line of text.
_LIST_ITEM = re.compile(r"^ ?(?:[-*+]|\d{1,3}[.)])[ \t]+(.*\S)[ \t]*$")
_CONTINUATION = re.compile(r"^(?: {2,}|\t)(?:(?:[-*+]|\d{1,3}[.)])[ \t]+)?(\S.*?)[ \t]*$")


def _name(text: str) -> str:
    return " ".join((text or "").split()).lower()


@dataclass
class Rubrics:
    by_dimension: dict[str, list[str]] = field(default_factory=dict)  # dimension (lower case) -> checks; ANY too
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, message)

    def for_dimension(self, dimension: str) -> list[str]:
        """The checks of `dimension`'s rubric, else of the rubric for any dimension, else []."""
        key = _name(dimension) or "general"
        return list(self.by_dimension.get(key) or self.by_dimension.get(ANY) or [])

    def summary(self) -> list[dict]:
        return [{"dimension": name or "any other dimension", "checks": len(checks)}
                for name, checks in sorted(self.by_dimension.items(), key=lambda kv: (kv[0] == ANY, kv[0]))]


def parse_rubrics(text: str) -> Rubrics:
    out = Rubrics()
    current: str | None = None
    started = 0
    checks: list[str] = []
    open_check = False  # the last line was part of a check: an indented line continues it
    fence = ""  # inside a fenced code block (an example in the spec is not a rubric)

    def close() -> None:
        if current is None:
            return
        if not checks:
            out.errors.append((started, "This rubric has no checks: list what a good answer does, one per line "
                                        "starting with '-'."))
        elif len(checks) > MAX_CHECKS:
            out.errors.append((started, f"This rubric has {len(checks)} checks; keep it to {MAX_CHECKS}."))
        else:
            out.by_dimension[current] = list(checks)

    for number, line in enumerate((text or "").splitlines(), start=1):
        marker = _FENCE.match(line)
        if fence:
            if marker and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence):
                fence = ""
            continue
        if marker:
            fence, open_check = marker.group(1), False
            continue
        heading = _HEADING.match(line)
        if heading:
            close()
            current, checks, open_check = None, [], False
            title = (heading.group(2) or "").strip()
            rubric = _RUBRIC.match(title)
            if rubric is None:
                if _RUBRIC_LIKE.match(title):
                    out.errors.append((number, f"'{title[:60]}' looks like a rubric heading: write 'Rubric: <dimension>' "
                                               "(or 'Rubric' alone for every dimension without its own)."))
                continue
            name = _name(rubric.group(1) or "")
            if len(name) > MAX_DIMENSION_CHARS:
                out.errors.append((number, f"A dimension name is at most {MAX_DIMENSION_CHARS} characters."))
                continue
            if name in out.by_dimension:
                out.errors.append((number, f"A second rubric for {name or 'any other dimension'}: "
                                           "keep one per dimension."))
                continue
            current, started = name, number
            continue
        if current is None:
            continue
        item = _LIST_ITEM.match(line)
        more = _CONTINUATION.match(line)
        if item:
            checks.append(item.group(1))
            open_check = True
        elif more and open_check and checks:
            checks[-1] = f"{checks[-1]} {more.group(1)}"
        else:
            open_check = False  # a blank line or prose ends the check above
            continue
        if len(checks[-1]) > MAX_CHECK_CHARS:
            out.errors.append((number, f"A check is at most {MAX_CHECK_CHARS} characters: split it in two."))
            current = None
    close()
    return out
