"""Fixtures of the page tests: `page`, a headless Chromium page (tests/browser.py)."""
from __future__ import annotations

import os

import pytest

from tests.browser import CHROMIUM, chromium_page

# Playwright's sync API runs an event loop in the test's thread; the test's own ORM calls are safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def page():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}; `make test` installs Debian's chromium")
    with chromium_page(playwright_api) as page:
        yield page
