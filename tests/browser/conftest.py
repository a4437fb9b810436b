"""Browser tests: Debian's chromium driven by Playwright against pytest-django's live server.

Needs /usr/bin/chromium (`apt-get install chromium`) and axe-core (`npm ci --prefix
tests/browser`); `.ci/run` installs both. Without them the tests are skipped with the reason,
except with CI set, where they fail: CI never silently skips a whole kind of test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

from .support import AXE, DESKTOP

CHROMIUM = Path(os.environ.get("APPRECIATION_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing(what: str, how: str) -> None:
    message = f"{what} is missing: {how}"
    if os.environ.get("CI"):
        pytest.fail(f"Browser tests cannot run in CI: {message}", pytrace=False)
    pytest.skip(f"Browser tests skipped: {message} (CI fails instead)")


@pytest.fixture(scope="module")
def browser():
    """One headless chromium per test module.

    Module scope, not session: Playwright's sync API keeps an asyncio loop running in this
    thread while it is started, and Django refuses ORM calls from a thread with a running
    loop (SynchronousOnlyOperation), which would break every later non-browser test. So the
    loop lives only as long as a browser module, and only there is Django told (with
    DJANGO_ALLOW_ASYNC_UNSAFE) that the test thread's ORM calls are safe: they are, the loop
    only drives the browser and never runs Django code.
    """
    if not CHROMIUM.exists():
        _missing(str(CHROMIUM), "apt-get install chromium")
    if not AXE.exists():
        _missing("axe-core", "npm ci --prefix tests/browser")
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            yield launched
            launched.close()


@pytest.fixture
def context(browser, live_server):
    """A fresh browser profile (no cookies) per test, French, desktop-sized."""
    ctx = browser.new_context(
        base_url=live_server.url, locale="fr-FR", viewport=DESKTOP, timezone_id="Europe/Paris"
    )
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    """A page that records what the browser reports as errors: a Content-Security-Policy
    refusal, a JavaScript exception or a missing resource fails the test at teardown."""
    new_page = context.new_page()
    problems: list[str] = []
    new_page.on("pageerror", lambda error: problems.append(f"JavaScript error: {error}"))
    new_page.on(
        "response",
        lambda response: (
            problems.append(f"HTTP {response.status}: {response.url}")
            if response.status >= 400
            else None
        ),
    )
    new_page.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type == "error"
            else None
        ),
    )
    new_page.problems = problems
    yield new_page
    assert not problems, "\n".join(problems)


@pytest.fixture
def log_in(context, live_server, client):
    """Log a user in to the browser: a session made by Django's test client, its cookie given
    to the browser (the login form itself is tested once, in test_accessibility)."""

    def _log_in(user) -> None:
        client.force_login(user)
        context.clear_cookies()
        context.add_cookies(
            [
                {
                    "name": settings.SESSION_COOKIE_NAME,
                    "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                    "url": live_server.url,
                }
            ]
        )

    return _log_in
