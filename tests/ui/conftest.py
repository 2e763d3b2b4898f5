"""The web page in a real headless Chromium, driven by Playwright.

The browser is the system's (Debian's ``chromium``, which scripts/test installs when it can, or
``MLXCLI_CHROMIUM``, or a Chromium or Chrome found on PATH or in macOS's /Applications), never one
Playwright downloads. Where there is none, these tests fail saying how to get one (they are in the slow tier:
``scripts/test --fast`` leaves them out; ``-m "not browser"`` does so explicitly).
"""

from __future__ import annotations

import os
import shutil

import pytest

# Records every Content-Security-Policy violation of the page (an init script runs outside the
# page's CSP): a page that never tries anything the policy forbids has none.
WATCH_CSP = "window.__violations = []; document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"


# Where a Chromium is found: Debian's and other distributions' names, then macOS's applications.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MAC_BROWSERS = (
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)


def chromium_path() -> str | None:
    found = [os.environ.get("MLXCLI_CHROMIUM"), *map(shutil.which, BROWSERS), *filter(os.path.exists, MAC_BROWSERS)]
    return next((path for path in found if path), None)


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    if path is None:
        pytest.fail("no Chromium here: scripts/test installs Debian's chromium when run as root with apt; "
                    "elsewhere install Chromium or Chrome, or set MLXCLI_CHROMIUM to one (or leave these tests out: -m 'not browser')")
    from playwright import sync_api  # the test extra has it
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser):
    """Factory: ``open_page(url)`` → a page in a fresh browser profile (its own localStorage), loaded.
    A JavaScript error or a CSP violation on the page fails the test."""
    contexts, pages = [], []

    def open_(url: str, context=None):
        if context is None:
            context = browser.new_context(viewport={"width": 1280, "height": 820}, accept_downloads=True)
            contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.add_init_script(WATCH_CSP)
        page.goto(url)
        pages.append(page)
        return page

    yield open_
    try:
        for page in pages:
            if not page.is_closed():
                assert page.evaluate("window.__violations") == [], "the page broke its own CSP"
            assert page.errors == [], page.errors
    finally:
        for context in contexts:
            context.close()
