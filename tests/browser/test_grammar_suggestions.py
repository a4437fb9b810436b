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
from tests.generation.test_review import make_draft

TEXT = "Les résultats sont encourageant ; les efforts doivent continuer."
FIXED = "Les résultats sont encourageants ; les efforts doivent continuer."

pytestmark = pytest.mark.browser


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


@pytest.fixture
def open_review(page, log_in, world):
    """The review page, signed in as the teacher (the `page` fixture fails the test on any
    script error or Content-Security-Policy refusal)."""

    def _open(url):
        log_in(world.teacher)
        page.goto(url)
        return page

    return _open


def test_a_suggestion_replaces_its_passage_on_click_and_saves_nothing(
    world,
    live_server,
    review_url,
    open_review,
):
    url, student = review_url
    page = open_review(url)
    box = page.locator(f"#text-{student.pk}")
    assert box.input_value() == TEXT
    page.locator("button.suggestion", has_text="encourageants").first.click()
    assert box.input_value() == FIXED
    assert page.locator("button.suggestion", has_text="encourageants").first.is_disabled()
    page.reload()  # nothing was saved: the server still has the draft's text
    assert page.locator(f"#text-{student.pk}").input_value() == TEXT


def test_a_passage_moved_by_typing_is_found_where_it_went(
    world,
    live_server,
    review_url,
    open_review,
):
    url, student = review_url
    page = open_review(url)
    box = page.locator(f"#text-{student.pk}")
    box.fill("🙂 Bravo. " + TEXT)  # an astral character and a sentence before the error
    page.locator("button.suggestion", has_text="encourageants").first.click()
    assert box.input_value() == "🙂 Bravo. " + FIXED


def test_a_passage_no_longer_there_is_left_alone(
    world,
    live_server,
    review_url,
    open_review,
):
    url, student = review_url
    page = open_review(url)
    box = page.locator(f"#text-{student.pk}")
    box.fill("Texte réécrit par l'enseignant.")
    button = page.locator("button.suggestion", has_text="encourageants").first
    button.click()
    assert box.input_value() == "Texte réécrit par l'enseignant."
    assert button.is_disabled()
