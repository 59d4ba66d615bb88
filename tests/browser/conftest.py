"""Browser tests: a real Chromium (Debian's, not a Playwright download) against ``live_server``.

Every test in this folder is marked ``browser``; deselect them with ``-m "not browser"``.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests import factories

HERE = Path(__file__).resolve().parent
SCREENSHOTS = HERE.parent.parent / "var" / "screenshots"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous: the live server shares one SQLite file with the test and CI machines are slow. The
# assertions still return as soon as their condition holds.
TIMEOUT_MS = 10_000

expect.set_options(timeout=TIMEOUT_MS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)


def chromium_path() -> str:
    return os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


# Package scope, not session scope: one Chromium for all the tests in this folder, shut down
# when the last of them is done. Playwright's sync API keeps an asyncio event loop running in
# the test thread while it is started; left running for the rest of the session it would make
# every later ``asyncio.run()`` (the URL guard, aiohttp transport tests...) fail with "cannot be
# called from a running event loop".
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    if not Path(path).is_file():
        message = f"Chromium not found at {path}: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (or set CHROMIUM_PATH); browser tests must run in CI.")
        pytest.skip(message)
    with pytest.MonkeyPatch.context() as env, sync_playwright() as playwright:
        # With that loop running, Django's async-safety check would refuse every ORM call the
        # tests make. Allowed only while the browser runs: set for the whole process it would
        # also leak into subprocesses such as `manage.py check --deploy` (async.E001).
        env.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session", autouse=True)
def _static_files_served(live_server: Any) -> None:
    """The pages need htmx and the stylesheet; pytest-django's live server serves them through
    Django's StaticFilesHandler. Fail loudly here rather than with a mysterious htmx test."""
    for path, content_type in (
        ("/static/vendor/htmx.min.js", "javascript"),
        ("/static/css/app.css", "text/css"),
    ):
        with urllib.request.urlopen(live_server.url + path, timeout=10) as response:
            served = response.headers.get("Content-Type", "")
            assert response.status == 200 and content_type in served, (
                f"live_server does not serve {path} (status {response.status}, {served})"
            )


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def login(page: Page, live_server: Any, username: str) -> None:
    """Log in through the real login form and wait for the logged-in page."""
    page.goto(f"{live_server.url}/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def screenshot(page: Page, name: str) -> None:
    """Save a full-page screenshot for the README under var/screenshots/ (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
