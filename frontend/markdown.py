"""Markdown for behaviour specs, sanitised: the rendered HTML can hold no script or handler."""
from __future__ import annotations

import markdown as md
import nh3


def render_markdown(text: str) -> str:
    return nh3.clean(md.markdown(text, extensions=["extra", "sane_lists"]))
