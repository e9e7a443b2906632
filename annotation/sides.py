"""Mapping between what the annotator saw (left/right) and the item's canonical a/b."""
from __future__ import annotations

SHOWN_CHOICES = ("left", "right", "tie", "both_bad")


def other_side(side: str) -> str:
    return "b" if side == "a" else "a"


def to_canonical(shown: str, *, shown_left: str) -> str:
    """`left`/`right` as seen on screen -> `a`/`b`; `tie` and `both_bad` pass through."""
    if shown == "left":
        return shown_left
    if shown == "right":
        return other_side(shown_left)
    return shown


def to_shown(canonical: str, *, shown_left: str) -> str:
    if canonical in ("a", "b"):
        return "left" if canonical == shown_left else "right"
    return canonical
