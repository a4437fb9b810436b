"""The review page with the keyboard and a screen reader: every control of a row is reached
with Tab and says whose appréciation it is; Ctrl+Enter validates and moves to the next one."""

from __future__ import annotations

import pytest
from django.urls import reverse

from generation.models import Appreciation
from tests.generation.test_review import make_draft

from .support import assert_accessible

pytestmark = pytest.mark.browser

TYPED = "Trimestre régulier, des efforts constants à l'oral comme à l'écrit."


@pytest.fixture
def drafted(world):
    students = list(world.school_class.students.order_by("last_name"))
    for student in students:
        make_draft(world, student)
    return students


def focused(page) -> dict:
    return page.evaluate(
        """() => {
            const e = document.activeElement;
            return {id: e.id, tag: e.tagName, text: e.textContent.trim()};
        }"""
    )


def test_tab_through_a_row_then_ctrl_enter_validates_and_moves_on(page, log_in, world, drafted):
    first, second = drafted[0], drafted[1]
    log_in(world.teacher)
    page.goto(reverse("generation:review", args=[world.assignment.pk, world.term.pk]))
    name = f"{first.last_name} {first.first_name}"

    # Names: the textarea and its buttons say which student they are for.
    textarea = page.get_by_role("textbox", name=f"Appréciation de {name}", exact=True)
    assert textarea.get_attribute("id") == f"text-{first.pk}"
    validate = page.get_by_role("button", name=f"Valider l'appréciation de {name}", exact=True)
    assert validate.count() == 1
    assert page.get_by_role("button", name=f"Régénérer le brouillon de {name}").count() == 1
    assert page.get_by_role("article", name=name).count() == 1

    # From the top of the page, Tab alone reaches the first student's textarea...
    page.locator("body").focus()
    for _ in range(60):
        page.keyboard.press("Tab")
        if focused(page)["id"] == f"text-{first.pk}":
            break
    else:
        pytest.fail(f"Tab never reached the textarea of {name}")
    # ... then its « Valider » button, then back.
    page.keyboard.press("Tab")
    assert validate.evaluate("b => b === document.activeElement")
    page.keyboard.press("Shift+Tab")
    assert focused(page)["id"] == f"text-{first.pk}"

    page.keyboard.press("Control+a")
    page.keyboard.type(TYPED)
    page.keyboard.press("Control+Enter")
    page.wait_for_function(f"() => document.activeElement.id === 'text-{second.pk}'")
    page.locator(f"#student-{first.pk}.status-validated").wait_for()

    appreciation = Appreciation.objects.get(student=first, term=world.term)
    assert appreciation.status == Appreciation.Status.VALIDATED
    assert appreciation.text == TYPED
    # Nothing else was validated on the way.
    assert not Appreciation.objects.filter(student=second, status="validated").exists()


def test_a_validation_error_is_announced(page, log_in, world, drafted):
    first = drafted[0]
    log_in(world.teacher)
    page.goto(reverse("generation:review", args=[world.assignment.pk, world.term.pk]))
    textarea = page.locator(f"#text-{first.pk}")
    textarea.fill("   ")
    textarea.press("Control+Enter")
    alert = page.locator(f"#student-{first.pk} [role=alert]")
    alert.wait_for()
    assert "vide" in alert.inner_text()


def test_progress_is_announced_and_the_poll_keeps_the_focus(page, log_in, world):
    """The poll replaces the progress box every 2 s: the count is announced by a live region
    that stays in place, and a keyboard user on « Annuler » is not thrown out of it."""
    from django.utils import timezone

    from generation import services
    from generation.models import Draft, GenerationJob
    from tests.factories import TermAssessmentFactory

    for student in world.school_class.students.all():
        TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    GenerationJob.objects.filter(pk=job.pk).update(
        status=GenerationJob.Status.RUNNING, heartbeat_at=timezone.now()
    )
    log_in(world.teacher)
    page.goto(reverse("generation:review", args=[world.assignment.pk, world.term.pk]))
    status = page.locator("#generation-status")
    assert status.get_attribute("role") == "status"
    assert_accessible(page)  # with the progress box, its « Annuler », the worker's state
    assert status.inner_text() == ""  # what is on screen at load is not read out again

    cancel = page.locator("#job-progress").get_by_role("button", name="Annuler")
    cancel.focus()
    with page.expect_response(lambda r: "progression" in r.url):
        pass
    page.wait_for_timeout(300)  # the swap settles
    assert page.evaluate("document.activeElement.textContent.trim()") == "Annuler"
    assert page.evaluate("document.activeElement.closest('#job-progress') !== null")

    draft = job.drafts.first()
    Draft.objects.filter(pk=draft.pk).update(
        status=Draft.Status.GENERATED, text="Trimestre sérieux.", generated_at=timezone.now()
    )
    page.wait_for_function(
        "() => document.getElementById('generation-status').textContent.includes('1 sur 3')",
        timeout=10_000,
    )
    assert page.evaluate("document.activeElement.textContent.trim()") == "Annuler"


def test_a_quick_draft_is_announced_when_it_arrives(page, log_in, world):
    from generation.models import QuickDraft

    quick = QuickDraft.objects.create(
        requested_by=world.teacher,
        school=world.school,
        prompt_messages=[{"role": "user", "content": "Veuillez rédiger…"}],
        prompt_version="test",
    )
    log_in(world.teacher)
    page.goto(reverse("generation:quick_draft_result", args=[quick.pk]))
    status = page.locator("#quick-status")
    assert status.get_attribute("role") == "status"
    assert status.inner_text() == ""
    assert_accessible(page)

    QuickDraft.objects.filter(pk=quick.pk).update(
        status=QuickDraft.Status.DONE, text="Un trimestre encourageant.", attempts=1
    )
    page.wait_for_function(
        "() => document.getElementById('quick-status').textContent.includes('encourageant')",
        timeout=10_000,
    )
    assert_accessible(page)
