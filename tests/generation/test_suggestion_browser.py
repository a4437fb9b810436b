"""Grammalecte's suggestions in a real browser (Debian's chromium through Playwright): a click
replaces that passage in the student's box, and only there, and saves nothing; a passage moved
by the teacher's typing is found where it went. Skipped, with the reason, where no chromium or
no Grammalecte is installed (the server-side tests of tests/generation/test_grammar.py fail in
CI without Grammalecte)."""

from __future__ import annotations

import os
from dataclasses import asdict

import pytest
from django.urls import reverse

from generation import grammar
from generation.checks import check_text
from generation.models import Draft
from tests.factories import PASSWORD
from tests.generation.test_copy_browser import browser  # noqa: F401 - the fixture
from tests.generation.test_review import make_draft

TEXT = "Les résultats sont encourageant ; les efforts doivent continuer."
FIXED = "Les résultats sont encourageants ; les efforts doivent continuer."


@pytest.fixture
def review_url(world, live_server):
    """A draft with a grammar error and its stored flags; the review page's address.

    Set up before the browser: Playwright's sync API runs an event loop in this thread, where
    Django refuses database queries.
    """
    if not grammar.status().available:
        reason = f"Grammalecte not installed: {grammar.status().detail}"
        if os.environ.get("CI"):
            pytest.fail(f"CI must check grammar: {reason}", pytrace=False)
        pytest.skip(reason)
    student = world.school_class.students.first()
    make_draft(world, student, text=TEXT)
    Draft.objects.filter(student=student).update(flags=[asdict(flag) for flag in check_text(TEXT)])
    return reverse("generation:review", args=[world.assignment.pk, world.term.pk]), student


def open_review(browser, live_server, world, url):  # noqa: F811 - the fixture
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(reverse("login"))
    page.fill("input[name=username]", world.teacher.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(url)
    return context, page, errors


def test_a_suggestion_replaces_its_passage_on_click_and_saves_nothing(
    world,
    live_server,
    review_url,
    browser,  # noqa: F811 - the fixture
):
    url, student = review_url
    context, page, errors = open_review(browser, live_server, world, url)
    box = page.locator(f"#text-{student.pk}")
    assert box.input_value() == TEXT
    page.locator("button.suggestion", has_text="encourageants").first.click()
    assert box.input_value() == FIXED
    assert page.locator("button.suggestion", has_text="encourageants").first.is_disabled()
    page.reload()  # nothing was saved: the server still has the draft's text
    assert page.locator(f"#text-{student.pk}").input_value() == TEXT
    assert errors == []  # no Content-Security-Policy violation, no script error
    context.close()


def test_a_passage_moved_by_typing_is_found_where_it_went(
    world,
    live_server,
    review_url,
    browser,  # noqa: F811 - the fixture
):
    url, student = review_url
    context, page, errors = open_review(browser, live_server, world, url)
    box = page.locator(f"#text-{student.pk}")
    box.fill("🙂 Bravo. " + TEXT)  # an astral character and a sentence before the error
    page.locator("button.suggestion", has_text="encourageants").first.click()
    assert box.input_value() == "🙂 Bravo. " + FIXED
    assert errors == []
    context.close()


def test_a_passage_no_longer_there_is_left_alone(
    world,
    live_server,
    review_url,
    browser,  # noqa: F811 - the fixture
):
    url, student = review_url
    context, page, errors = open_review(browser, live_server, world, url)
    box = page.locator(f"#text-{student.pk}")
    box.fill("Texte réécrit par l'enseignant.")
    button = page.locator("button.suggestion", has_text="encourageants").first
    button.click()
    assert box.input_value() == "Texte réécrit par l'enseignant."
    assert button.is_disabled()
    assert errors == []
    context.close()
