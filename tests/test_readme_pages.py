"""The README's table of pages names URLs that exist: each resolves to a view, and every page a
person opens from the frontend's routes (GET views that render a page, not actions) is listed."""
from __future__ import annotations

import re
from pathlib import Path

from django.urls import Resolver404, resolve

README = Path(__file__).resolve().parent.parent / "README.md"
SAMPLE = {"<slug>": "demo", "<username>": "someone", "<version>": "1", "<id>": "1"}
# Routes that are actions or fragments, not pages people open.
NOT_PAGES = {"logout", "token-new", "token-rotate", "token-revoke", "label-next", "label-submit", "label-skip",
             "label-calibration-answer", "label-rank", "label-rewrite", "label-diff", "label-negative", "label-rubric",
             "label-rewrite-revise", "rewrite-review", "bad-case-mark", "skills-update", "calibration-policy",
             "calibration-ack", "calibration-override", "calibration-recalibrate", "anchors-import", "anchors-set",
             "anchor-edit", "lead-spec", "lead-import", "lead-imports", "import-status", "import-retry", "set-freezing",
             "set-freeze-retry", "run-cancel", "run-retry", "run-feedback", "run-human-suite", "rl-run-start", "monitor-thresholds",
             "analytics-refresh", "analytics-progress", "analytics-policy", "analytics-csv", "my-work-edit",
             "analytics-cue", "analytics-cue-remove", "calibration-proposal",
             "my-goal", "settings-goal", "settings-routing", "judge-job-start", "judge-job", "settings-rm-scores",
             "judge-train", "settings-feedback", "settings-feedback-token", "redteam-attempt-new", "redteam-attempt",
             "redteam-hack", "redteam-review", "redteam-access"}


def _table_urls() -> list[str]:
    text = README.read_text()
    table = text[text.index("| page | URL | who |"):]
    table = table[:table.index("\n\n")]
    return [url for row in table.splitlines()[2:] for url in re.findall(r"`(/[^`]*)`", row)]


def test_every_url_in_the_readme_table_resolves():
    urls = _table_urls()
    assert len(urls) >= 15
    for url in urls:
        path = url
        for placeholder, value in SAMPLE.items():
            path = path.replace(placeholder, value)
        try:
            resolve(path)
        except Resolver404:
            raise AssertionError(f"README lists {url}, which no route serves") from None


def test_every_frontend_page_is_in_the_readme_table():
    from frontend.urls import urlpatterns

    listed = set()
    for url in _table_urls():
        path = url
        for placeholder, value in SAMPLE.items():
            path = path.replace(placeholder, value)
        listed.add(resolve(path).url_name)
    pages = {p.name for p in urlpatterns} - NOT_PAGES
    assert pages - listed == set(), f"pages missing from the README table: {sorted(pages - listed)}"
