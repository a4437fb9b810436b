"""Issue 9, "done when": text a teacher types into a review row is never replaced by a draft
arriving from the worker; she chooses between her text and the draft.

A real Celery worker (in a thread of this process, so it shares the live server's database)
drafts with the tiny random model, one student per batch and slowed down, while the browser
types into three rows.
"""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from generation.models import Appreciation, GenerationJob
from generation.services import runner
from tests.conftest import wait_for
from tests.factories import StudentFactory, TermAssessmentFactory

from .support import DESKTOP, PHONE, assert_accessible, horizontal_overflow

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.model]

# Seconds each batch (one student) takes at least: the teacher types before drafts arrive.
BATCH_DELAY = 1.0
# Rows typed into (students in the order the worker drafts them): not the first ones, which
# the worker may reach while the browser is still typing.
# Texts that pass the checks (impersonal, French, no grade): validating them asks nothing.
TYPED = {
    2: "Trimestre sérieux et régulier, écrit pendant la génération : l'oral doit progresser.",
    4: "Un trimestre solide, des efforts constants à l'écrit comme à l'oral.",
    5: "Ensemble satisfaisant : une implication réelle, des méthodes à consolider.",
}


@pytest.fixture
def slow_worker(celery_worker, tiny_model_settings, monkeypatch):
    """The in-thread worker, one student per batch, each batch slowed down."""
    tiny_model_settings.APPRECIATION_BATCH_SIZE = 1
    draft = runner.draft_with_checks

    def slow_draft(**kwargs):
        time.sleep(BATCH_DELAY)
        return draft(**kwargs)

    monkeypatch.setattr(runner, "draft_with_checks", slow_draft)
    return celery_worker


@pytest.fixture
def class_of_six(world):
    for index in range(3):
        StudentFactory(school_class=world.school_class, last_name=f"Nom{index + 3:02d}")
    students = list(world.school_class.students.order_by("last_name"))
    assert len(students) == 6
    for student in students:
        TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
        if not student.assessments.filter(term=world.terms[0]).exists():
            TermAssessmentFactory(
                student=student, term=world.terms[0], subject=world.assignment.subject
            )
    return students


def test_typed_text_survives_arriving_drafts(page, log_in, world, class_of_six, slow_worker):
    students = class_of_six
    log_in(world.teacher)
    page.goto(reverse("generation:review", args=[world.assignment.pk, world.term.pk]))
    page.get_by_role("button", name="Générer les appréciations").click()
    page.locator("#job-progress[hx-get]").wait_for()

    for index, text in TYPED.items():
        textarea = page.locator(f"#text-{students[index].pk}")
        textarea.click()
        textarea.press_sequentially(text[:12])
        textarea.fill(text)
    job = GenerationJob.objects.get(assignment=world.assignment, term=world.term)
    typed_students = [students[index] for index in TYPED]
    assert not job.drafts.filter(student__in=typed_students).exclude(generated_at=None), (
        "the worker drafted a row before the teacher typed in it: slow it down (BATCH_DELAY)"
    )

    wait_for(
        lambda: GenerationJob.objects.get(pk=job.pk).status not in GenerationJob.ACTIVE_STATUSES,
        timeout=180,
    )
    assert GenerationJob.objects.get(pk=job.pk).status == GenerationJob.Status.SUCCEEDED
    # The last poll (the one that stops polling) has been swapped in, with its rows.
    page.locator("#job-progress:not([hx-get])").wait_for(timeout=15_000)

    for index, student in enumerate(students):
        appreciation = Appreciation.objects.get(student=student, term=world.term)
        row = page.locator(f"#student-{student.pk}")
        textarea = row.locator("textarea")
        if index in TYPED:
            assert textarea.input_value() == TYPED[index], student
            status = row.locator("[data-draft-status]")
            assert status.get_attribute("role") == "status"
            assert "Nouveau brouillon disponible" in status.inner_text()
            assert row.get_by_role("button", name="Utiliser ce brouillon").is_visible()
            assert row.get_by_role("button", name="Garder mon texte").is_visible()
        else:
            # Rows nobody typed into receive their draft as before.
            assert textarea.input_value() == appreciation.text, student
            assert not row.get_by_role("button", name="Garder mon texte").count()

    assert "6 sur 6" in page.locator("#generation-status").inner_text()
    # The notices, their buttons and the drafts they show pass the audit too.
    assert_accessible(page)

    # On a phone, the notices fit the screen.
    page.set_viewport_size(PHONE)
    assert horizontal_overflow(page) <= 0
    page.set_viewport_size(DESKTOP)

    # Keep her text, then validate it: the server stores HER text (no version conflict).
    kept = students[2]
    row = page.locator(f"#student-{kept.pk}")
    row.get_by_role("button", name="Garder mon texte").click()
    assert row.locator("textarea").evaluate("t => t === document.activeElement")
    row.get_by_role("button", name="Valider").click()
    page.locator(f"#student-{kept.pk}.status-validated").wait_for()
    appreciation = Appreciation.objects.get(student=kept, term=world.term)
    assert appreciation.status == Appreciation.Status.VALIDATED
    assert appreciation.text == TYPED[2]
    assert page.locator(f"#text-{kept.pk}").input_value() == TYPED[2]

    # Use the draft instead: it goes into the textarea, and validates without a conflict.
    used = students[4]
    draft_text = Appreciation.objects.get(student=used, term=world.term).text
    row = page.locator(f"#student-{used.pk}")
    row.get_by_role("button", name="Utiliser ce brouillon").click()
    textarea = page.locator(f"#text-{used.pk}")
    assert textarea.input_value() == draft_text
    assert textarea.evaluate("t => t === document.activeElement")
    assert not page.locator(f"#student-{used.pk}").get_by_role("button", name="Garder").count()
    if draft_text.strip():
        page.locator(f"#student-{used.pk}").get_by_role("button", name="Valider").click()
        # The random test model's noise may fail the checks: the page then names the problems
        # and asks for a confirmation before validating it.
        page.locator(
            f"#student-{used.pk}.status-validated, #student-{used.pk} .confirm"
        ).first.wait_for()
        confirm = page.locator(f"#student-{used.pk}").get_by_role(
            "button", name="Valider quand même"
        )
        if confirm.count():
            confirm.click()
        page.locator(f"#student-{used.pk}.status-validated").wait_for()

    # The third typed row still waits for her choice, her text intact; « Valider » (here with
    # Ctrl+Enter) chooses her text, without a conflict.
    last = students[5]
    textarea = page.locator(f"#text-{last.pk}")
    assert textarea.input_value() == TYPED[5]
    textarea.press("Control+Enter")
    page.locator(f"#student-{last.pk}.status-validated").wait_for()
    appreciation = Appreciation.objects.get(student=last, term=world.term)
    assert (appreciation.status, appreciation.text) == (Appreciation.Status.VALIDATED, TYPED[5])
