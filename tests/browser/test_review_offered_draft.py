"""A new draft offered beside a teacher's validated text, in the browser: nothing moves until
she clicks; « Utiliser ce brouillon » fills her box and « Valider » adopts that draft;
« Restaurer » brings an earlier text of hers back; « Garder mon texte » sets the draft aside."""

from __future__ import annotations

import pytest
from django.urls import reverse

from generation import services
from generation.backends import LocmemBackend
from generation.models import Appreciation
from tests.factories import TermAssessmentFactory

from .support import assert_accessible

pytestmark = pytest.mark.browser

FIRST = "Un trimestre sérieux, des efforts réguliers à poursuivre à l'oral."
SECOND = "Un trimestre solide : des méthodes à consolider, une implication constante."


@pytest.fixture
def offered(world):
    """One student: validated FIRST, then SECOND, then « Régénérer » offered a new draft.

    Set up before the browser (Playwright's event loop forbids queries in this thread)."""
    student = world.school_class.students.order_by("pk").first()
    TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
    backend = LocmemBackend()
    for students in (None, [student]):
        job = services.job_create(
            assignment=world.assignment, term=world.term, user=world.teacher, students=students
        )
        services.job_run(job_id=job.pk, hostname="w", backend=backend)
        if students is None:
            for text in (FIRST, SECOND):
                appreciation = Appreciation.objects.get(student=student)
                services.draft_validate(
                    assignment=world.assignment,
                    term=world.term,
                    student=student,
                    user=world.teacher,
                    text=text,
                    version=appreciation.version,
                )
    appreciation = Appreciation.objects.select_related("offered_draft").get(student=student)
    assert appreciation.text == SECOND and appreciation.offered_draft is not None
    return student, appreciation.offered_draft


def test_the_offered_draft_is_used_only_on_a_click(page, log_in, world, offered):
    student, draft = offered
    log_in(world.teacher)
    page.goto(reverse("generation:review", args=[world.assignment.pk, world.term.pk]))
    row = page.locator(f"#student-{student.pk}")
    textarea = row.locator("textarea")
    assert textarea.input_value() == SECOND  # her text in the box, the draft beside it
    assert draft.text in row.locator(".offered").inner_text()
    assert_accessible(page)

    # « Restaurer » brings back her first text; nothing is saved by it.
    row.locator("details.history summary").click()
    row.locator("details.history li", has_text=FIRST).get_by_role("button").click()
    assert textarea.input_value() == FIRST

    # « Utiliser ce brouillon » fills the box with the draft; « Valider » adopts it.
    row.get_by_role("button", name="Utiliser ce brouillon").click()
    assert textarea.input_value() == draft.text
    assert row.locator("input[name=draft]").input_value() == str(draft.pk)
    row.get_by_role("button", name="Valider", exact=False).first.click()
    page.locator(f"#student-{student.pk}.status-validated .offered").wait_for(state="detached")

    with_db = Appreciation.objects.get(student=student)
    assert (with_db.text, with_db.draft_id, with_db.offered_draft_id) == (
        draft.text,
        draft.pk,
        None,
    )


def test_keep_my_text_sets_the_draft_aside(page, log_in, world, offered):
    student, _ = offered
    log_in(world.teacher)
    page.goto(reverse("generation:review", args=[world.assignment.pk, world.term.pk]))
    row = page.locator(f"#student-{student.pk}")
    row.get_by_role("button", name="Garder mon texte").click()
    page.locator(f"#student-{student.pk} .offered").wait_for(state="detached")
    assert page.locator(f"#text-{student.pk}").input_value() == SECOND
    with_db = Appreciation.objects.get(student=student)
    assert (with_db.text, with_db.status, with_db.offered_draft_id) == (SECOND, "validated", None)
