"""The copy view in a real browser (Debian's chromium through Playwright): « Copier » puts one
student's appréciation on the clipboard, « Tout copier » every text in class order, and the live
region says what was copied. Skipped, with the reason, where no chromium is installed."""

from __future__ import annotations

import os
import shutil

import pytest
from django.urls import reverse

from generation.models import Appreciation
from tests.factories import (
    FRENCH_CLASS_ORDER,
    PASSWORD,
    SchoolClassFactory,
    TeachingAssignmentFactory,
    french_class_students,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser():
    if CHROMIUM is None:
        reason = "No chromium on this machine: the browser test needs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {reason}", pytrace=False)
        pytest.skip(reason)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def copy_url(world, live_server):
    """A class with every student's appréciation validated; its copy view's address.

    Set up before the browser: Playwright's sync API runs an event loop in this thread, where
    Django refuses database queries.
    """
    school_class = SchoolClassFactory(
        school=world.school, school_year=world.term.school_year, name="2nde 7"
    )
    assignment = TeachingAssignmentFactory(
        teacher=world.teacher, school_class=school_class, subject=world.assignment.subject
    )
    for student in french_class_students(school_class):
        Appreciation.objects.create(
            student=student,
            subject=assignment.subject,
            term=world.term,
            status=Appreciation.Status.VALIDATED,
            text=f"Appréciation de {student.first_name}.",
        )
    return reverse("exports:assignment_copy", args=[assignment.pk, world.term.pk])


def test_copy_one_student_then_all(world, live_server, copy_url, browser):
    context = browser.new_context(base_url=live_server.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(reverse("login"))
    page.fill("input[name=username]", world.teacher.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(copy_url)

    page.get_by_role("button", name="Copier l'appréciation de N'Diaye Awa").click()
    status = page.locator("#copy-status")
    status.filter(has_text="Copié : l'appréciation de N'Diaye Awa.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == "Appréciation de Awa."

    page.get_by_role("button", name="Tout copier").click()
    status.filter(has_text="Copié : toutes les appréciations").wait_for()
    lines = page.evaluate("navigator.clipboard.readText()").split("\n")
    assert lines == [f"Appréciation de {first}." for _, first in FRENCH_CLASS_ORDER]
    assert errors == []  # no Content-Security-Policy violation, no script error
    context.close()
