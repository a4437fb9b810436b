from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from classes.models import TermAssessment
from tests.factories import StudentFactory, TermAssessmentFactory

pytestmark = pytest.mark.django_db


def cell_url(world, student, field, term=None):
    term = term or world.term
    return reverse("classes:cell_update", args=[world.assignment.pk, term.pk, student.pk, field])


def class_url(world, term=None):
    return reverse("classes:class_page", args=[world.assignment.pk, (term or world.term).pk])


def test_dashboard_lists_own_classes_with_completion(world, login):
    client = login(world.teacher)
    response = client.get(reverse("classes:dashboard") + f"?trimestre={world.terms[0].pk}")
    body = response.content.decode()
    assert response.status_code == 200
    assert "2nde 3" in body
    assert "3 / 3 élèves" in body  # the fixture's three students are complete in term 1
    assert "1ère 1" not in body  # the other teacher's class


def test_dashboard_counts_incomplete_inputs(world, login):
    student = world.school_class.students.first()
    TermAssessmentFactory(student=student, term=world.term, work=None)
    response = login(world.teacher).get(
        reverse("classes:dashboard") + f"?trimestre={world.term.pk}"
    )
    assert "0 / 3 élèves" in response.content.decode()


def test_department_head_sees_headed_classes_read_only(world, login):
    client = login(world.head)
    body = client.get(reverse("classes:dashboard") + f"?trimestre={world.term.pk}").content
    assert "lecture seule" in body.decode()
    assert "2nde 3" in body.decode()
    page = client.get(class_url(world)).content.decode()
    assert "lecture seule" in page
    assert "hx-post" not in page


def test_class_page_shows_earlier_averages(world, login):
    response = login(world.teacher).get(class_url(world))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Moy. 1er trimestre" in body
    assert "12.5" in body or "12,5" in body
    assert body.count('hx-post="') == 3 * 4  # 3 students × 4 inputs


@pytest.mark.parametrize(
    ("raw", "stored"),
    [("10,5", Decimal("10.5")), ("14", Decimal("14")), ("0", Decimal("0")), ("", None)],
)
def test_cell_edit_saves_valid_values(world, login, raw, stored):
    student = world.school_class.students.first()
    response = login(world.teacher).post(
        cell_url(world, student, "average"), {"value": raw}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assessment = TermAssessment.objects.get(student=student, term=world.term)
    assert assessment.average == stored
    assert assessment.updated_by == world.teacher
    body = response.content.decode()
    assert 'class="num cell saved"' in body
    assert 'hx-swap-oob="true"' in body  # the row's completeness follows


@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        ("average", "21", "entre 0 et 20"),
        ("average", "-1", "entre 0 et 20"),
        ("average", "abc", "n&#x27;est pas un nombre"),
        ("behaviour", "10,5", "entre 0 et 10"),
    ],
)
def test_cell_edit_rejects_invalid_value_and_saves_nothing(world, login, field, raw, message):
    student = world.school_class.students.first()
    TermAssessmentFactory(student=student, term=world.term, average=Decimal("9"))
    response = login(world.teacher).post(cell_url(world, student, field), {"value": raw})
    body = response.content.decode()
    assert response.status_code == 200
    assert message in body
    assert 'aria-invalid="true"' in body
    assert f'value="{raw}"' in body  # what the teacher typed, to correct it
    assessment = TermAssessment.objects.get(student=student, term=world.term)
    assert assessment.average == Decimal("9")
    assert getattr(assessment, field) != raw


def test_closed_term_is_read_only(world, login):
    world.term.is_closed = True
    world.term.save()
    client = login(world.teacher)
    page = client.get(class_url(world)).content.decode()
    assert "Ce trimestre est clos" in page
    assert "hx-post" not in page
    student = world.school_class.students.first()
    response = client.post(cell_url(world, student, "average"), {"value": "12"})
    assert "clos" in response.content.decode()
    assert not TermAssessment.objects.filter(student=student, term=world.term).exists()


def test_unknown_field_is_404(world, login):
    student = world.school_class.students.first()
    response = login(world.teacher).post(cell_url(world, student, "updated_by"), {"value": "1"})
    assert response.status_code == 404


def test_student_of_another_class_is_404(world, login):
    stranger = StudentFactory(school_class=world.other_assignment.school_class)
    response = login(world.teacher).post(cell_url(world, stranger, "average"), {"value": "12"})
    assert response.status_code == 404
    assert not TermAssessment.objects.filter(student=stranger).exists()


def test_class_page_query_count_does_not_grow_with_class_size(world, login):
    client = login(world.teacher)
    client.get(class_url(world))  # warm caches (session, content types)
    with CaptureQueriesContext(connection) as small:
        client.get(class_url(world))
    for index in range(20):
        student = StudentFactory(school_class=world.school_class, last_name=f"Ajout{index}")
        TermAssessmentFactory(student=student, term=world.terms[0])
        TermAssessmentFactory(student=student, term=world.term)
    with CaptureQueriesContext(connection) as large:
        response = client.get(class_url(world))
    assert response.content.decode().count('hx-post="') == 23 * 4
    assert len(large.captured_queries) == len(small.captured_queries)
