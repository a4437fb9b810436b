"""One definition of "ready to draft": the term's average, behaviour, participation and work.

Earlier terms' averages are optional (a student who joined mid-year has none: the prompt says
N/A). The dashboard, the class page, the review page and job creation all agree.
"""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from classes import selectors as class_selectors
from generation import selectors, services
from generation.models import Draft, Feedback
from generation.services import jobs
from tests.factories import StudentFactory, TermAssessmentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_enqueue(monkeypatch):
    monkeypatch.setattr(jobs, "_enqueue", lambda job, draft_count: None)


@pytest.fixture
def newcomer(world):
    """Joined the class in term 2: no term 1 average at all, complete term 2 inputs."""
    student = StudentFactory(school_class=world.school_class, last_name="Arrivée")
    TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
    return student


@pytest.fixture
def no_behaviour(world):
    """Every term 1 input, but no behaviour rating for the current term."""
    student = StudentFactory(school_class=world.school_class, last_name="Sanscomportement")
    TermAssessmentFactory(student=student, term=world.terms[0], subject=world.assignment.subject)
    TermAssessmentFactory(
        student=student, term=world.term, subject=world.assignment.subject, behaviour=None
    )
    return student


def dashboard_count(world, login) -> str:
    body = login(world.teacher).get(reverse("classes:dashboard") + f"?trimestre={world.term.pk}")
    return body.content.decode()


def test_newcomer_is_ready_without_an_earlier_average(world, newcomer):
    readiness = selectors.class_readiness(
        assignment=world.assignment, term=world.term, students=[newcomer]
    )[0]
    assert readiness.is_ready and readiness.missing == ()
    assert readiness.inputs.averages[0] is None
    assert "N/A au premier trimestre" in selectors_prompt(readiness)


def selectors_prompt(readiness) -> str:
    from generation.prompts import build_messages

    return build_messages(readiness.inputs)[1]["content"]


def test_newcomer_is_drafted_with_na_for_term_1(world, newcomer, no_enqueue):
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    draft = Draft.objects.get(job=job, student=newcomer)
    assert (
        "12.5 de moyenne ce trimestre et N/A au premier trimestre"
        in (draft.prompt_messages[1]["content"])
    )
    # The fixture's three students have no term 2 inputs: the newcomer alone is drafted.
    assert job.drafts.count() == 1


def test_newcomer_counts_as_ready_on_every_page(world, login, newcomer):
    client = login(world.teacher)
    dashboard = client.get(reverse("classes:dashboard") + f"?trimestre={world.term.pk}")
    assert "1 / 4 élèves" in dashboard.content.decode()

    page = client.get(reverse("classes:class_page", args=[world.assignment.pk, world.term.pk]))
    body = page.content.decode()
    assert page.context["complete_count"] == 1
    status = body.split(f'id="status-{newcomer.pk}"')[1].split("</td>")[0]
    assert "complète" in status and "manque" not in status

    review = client.get(reverse("generation:review", args=[world.assignment.pk, world.term.pk]))
    assert review.context["ready_count"] == 1
    assert newcomer not in [r.student for r in review.context["not_ready"]]
    row = review.content.decode().split(f'id="student-{newcomer.pk}"')[1].split("</article>")[0]
    assert "Manque" not in row and "moyenne du 1er trimestre" not in row
    assert "Pas encore de brouillon" in row


def test_missing_current_behaviour_is_not_ready_anywhere(world, login, no_behaviour, no_enqueue):
    client = login(world.teacher)
    dashboard = client.get(reverse("classes:dashboard") + f"?trimestre={world.term.pk}")
    assert "0 / 4 élèves" in dashboard.content.decode()

    page = client.get(reverse("classes:class_page", args=[world.assignment.pk, world.term.pk]))
    assert page.context["complete_count"] == 0
    status = page.content.decode().split(f'id="status-{no_behaviour.pk}"')[1].split("</td>")[0]
    assert "manque : comportement /10" in status

    review = client.get(reverse("generation:review", args=[world.assignment.pk, world.term.pk]))
    assert review.context["ready_count"] == 0
    row = review.content.decode().split(f'id="student-{no_behaviour.pk}"')[1]
    assert "Manque : comportement /10" in row.split("</article>")[0]

    readiness = selectors.class_readiness(
        assignment=world.assignment, term=world.term, students=[no_behaviour]
    )[0]
    assert not readiness.is_ready and readiness.missing == ("comportement /10",)
    with pytest.raises(ValidationError):
        services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)


def test_the_three_views_share_one_definition(world, newcomer, no_behaviour):
    """The dashboard's SQL count and the rows' readiness come from the same definition."""
    assignment = class_selectors.with_completion(
        class_selectors.own_assignments(user=world.teacher), term=world.term
    ).get(pk=world.assignment.pk)
    rows = class_selectors.class_sheet(assignment=world.assignment, term=world.term)
    readiness = selectors.class_readiness(assignment=world.assignment, term=world.term)
    assert assignment.complete_count == sum(row.is_complete for row in rows) == 1
    assert [r.is_ready for r in readiness] == [row.is_complete for row in rows]
    assert [list(r.missing) for r in readiness] == [row.missing_labels for row in rows]


def test_feedback_records_a_missing_average_as_none(world, newcomer):
    services.draft_validate(
        assignment=world.assignment,
        term=world.term,
        student=newcomer,
        user=world.teacher,
        text="Un trimestre d'installation réussi ; la participation orale reste à affirmer.",
        version=0,
    )
    inputs = Feedback.objects.get(appreciation__student=newcomer).inputs
    assert inputs["trimester"] == 2
    assert inputs["averages"] == [None, 12.5, None]
    assert inputs["behaviour"] == 7.0


def test_feedback_of_an_incomplete_student_keeps_what_is_known(world, no_behaviour):
    services.draft_validate(
        assignment=world.assignment,
        term=world.term,
        student=no_behaviour,
        user=world.teacher,
        text="Un trimestre sérieux ; la participation orale reste à affirmer.",
        version=0,
    )
    inputs = Feedback.objects.get(appreciation__student=no_behaviour).inputs
    assert inputs["averages"] == [12.5, 12.5, None]
    assert inputs["behaviour"] is None
    assert inputs["work"] == 8.0
