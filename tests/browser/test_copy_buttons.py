"""The copy view in a real browser (Debian's chromium through Playwright): « Copier » puts one
student's appréciation on the clipboard, « Tout copier » every text in class order, and the live
region says what was copied. Needs chromium (tests/browser/conftest.py)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from generation.models import Appreciation
from tests.factories import (
    FRENCH_CLASS_ORDER,
    SchoolClassFactory,
    TeachingAssignmentFactory,
    french_class_students,
)

pytestmark = pytest.mark.browser


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


def test_copy_one_student_then_all(world, live_server, copy_url, context, page, log_in):
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    log_in(world.teacher)
    page.goto(copy_url)

    page.get_by_role("button", name="Copier l'appréciation de N'Diaye Awa").click()
    status = page.locator("#copy-status")
    status.filter(has_text="Copié : l'appréciation de N'Diaye Awa.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == "Appréciation de Awa."

    page.get_by_role("button", name="Tout copier").click()
    status.filter(has_text="Copié : toutes les appréciations").wait_for()
    lines = page.evaluate("navigator.clipboard.readText()").split("\n")
    assert lines == [f"Appréciation de {first}." for _, first in FRENCH_CLASS_ORDER]
