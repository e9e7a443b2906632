"""Browser helpers for the Chromium tests (tests/frontend/*_browser.py): Debian's Chromium driven
by Playwright (never `playwright install`), logging in with the keyboard, and a check that a chart
canvas was painted. The `page` fixture that uses them is in tests/frontend/conftest.py."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

CHROMIUM = os.environ.get("PREFSTUDIO_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-quic", "--no-first-run", "--disable-sync"]

# Counts the painted pixels of a <canvas id=...>: a chart that drew nothing has none.
PAINTED = """(id) => {
  const c = document.getElementById(id);
  if (!c || c.width === 0 || c.height === 0) return 0;
  const pixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  return painted;
}"""


@contextmanager
def chromium_page(playwright_api) -> Iterator[object]:
    """A fresh headless Chromium page; alerts and confirms are dismissed and kept in page.dialogs."""
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_context().new_page()
        page.set_default_timeout(15_000)
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.dialogs = dialogs
        try:
            yield page
        finally:
            browser.close()


def login_with_keyboard(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    # The username field has autofocus; under load Chromium may apply it a moment after "load",
    # and keys typed before that go nowhere.
    page.wait_for_function("document.activeElement && document.activeElement.name === 'username'")
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base_url}/")
