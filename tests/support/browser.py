"""A real browser for the tests: the system Chromium driven by Playwright.

Playwright's own browser download reaches outside the package registries, so the tests use the
Debian package ``chromium`` (``make test`` and ``.ci/run`` install it where they can).  A missing
browser fails the test with the install command: a browser test is never skipped.
"""
import shutil

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def chromium_path() -> str:
    """The system Chromium's executable, or a test failure saying how to install it."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("falta chromium para las pruebas en navegador: sudo apt-get install chromium")


@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium shared by the session's browser tests."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(),
                                    args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    """A fresh page (its own context: no cookies or storage shared between tests)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 2000})
    pg = context.new_page()
    yield pg
    context.close()
