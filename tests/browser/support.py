"""Helpers of the browser tests: log in through the form, audit with axe-core, measure
sideways scrolling."""

from __future__ import annotations

import json
from pathlib import Path

from django.urls import reverse

from tests.factories import PASSWORD

AXE = Path(__file__).with_name("node_modules") / "axe-core" / "axe.min.js"
# An iPhone-sized screen (RGAA 10.11: content readable without horizontal scroll at 320 CSS
# px wide and up; 390 px is the common phone today).
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# The audit fails on these impacts; "moderate" and "minor" are reported, not fatal.
BLOCKING_IMPACTS = ("serious", "critical")


def log_in_with_form(page, username: str, password: str = PASSWORD) -> None:
    page.goto(reverse("login"))
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()


def axe_violations(page, *, impacts=BLOCKING_IMPACTS) -> list[dict]:
    """Run axe-core (served from tests/browser/node_modules, no CDN) on the page as it is;
    return the violations of the given impacts."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol: the page's Content-Security-Policy (no
        # inline script) stays on for the application's own code.
        page.evaluate(AXE.read_text(encoding="utf-8"))
    results = page.evaluate(
        """async () => await axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',
                                           'wcag22aa', 'best-practice']},
            resultTypes: ['violations'],
        })"""
    )
    return [v for v in results["violations"] if v["impact"] in impacts]


def describe(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"[{violation['impact']}] {violation['id']}: {violation['help']}")
        for node in violation["nodes"][:5]:
            lines.append(f"    {json.dumps(node['target'])}: {node['failureSummary']!r}")
    return "\n".join(lines)


def assert_accessible(page) -> None:
    violations = axe_violations(page)
    assert not violations, f"{page.url}\n{describe(violations)}"


def horizontal_overflow(page) -> int:
    """How many CSS pixels the page scrolls sideways (0 when it fits the viewport)."""
    return page.evaluate("() => document.scrollingElement.scrollWidth - window.innerWidth")
