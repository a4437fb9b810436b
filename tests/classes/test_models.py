from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from classes.models import TermAssessment
from tests.factories import StudentFactory, TermAssessmentFactory, TermFactory, shared_subject

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("average", Decimal("20.01")),
        ("average", Decimal("-0.5")),
        ("behaviour", Decimal("10.5")),
        ("participation", Decimal("-1")),
        ("work", Decimal("11")),
    ],
)
def test_database_rejects_out_of_range_inputs(field, value):
    assessment = TermAssessmentFactory()
    setattr(assessment, field, value)
    # Saved with .update() too: the constraint lives in the database, not in a form.
    with pytest.raises(IntegrityError), transaction.atomic():
        TermAssessment.objects.filter(pk=assessment.pk).update(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("average", Decimal("0")),
        ("average", Decimal("20")),
        ("work", Decimal("10")),
        ("behaviour", None),
        ("average", None),
    ],
)
def test_database_accepts_bounds_and_empty(field, value):
    assessment = TermAssessmentFactory()
    TermAssessment.objects.filter(pk=assessment.pk).update(**{field: value})
    assessment.refresh_from_db()
    assert getattr(assessment, field) == value


def test_one_assessment_per_student_subject_term():
    first = TermAssessmentFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        TermAssessment.objects.create(student=first.student, subject=first.subject, term=first.term)


def test_same_student_can_have_each_term_and_subject():
    student = StudentFactory()
    term1 = TermFactory(number=1)
    term2 = TermFactory(number=2, school_year=term1.school_year)
    TermAssessmentFactory(student=student, term=term1)
    TermAssessmentFactory(student=student, term=term2)
    TermAssessmentFactory(student=student, term=term1, subject=shared_subject("HGGSP"))
    assert student.assessments.count() == 3


def test_term_number_is_1_to_3():
    term = TermFactory(number=3)
    with pytest.raises(IntegrityError), transaction.atomic():
        type(term).objects.filter(pk=term.pk).update(number=4)


def test_completeness_and_missing_labels():
    assessment = TermAssessmentFactory(behaviour=None, work=None)
    assert not assessment.is_complete
    assert assessment.missing_labels == ["comportement /10", "travail /10"]


@pytest.mark.parametrize("login", ["martin lea", "a;b", 'a"b', "a\\b", "a\u202eb"])
def test_a_gepi_login_that_gepis_file_cannot_carry_is_refused(world, login):
    from django.core.exceptions import ValidationError

    student = world.school_class.students.first()
    student.gepi_login = login
    with pytest.raises(ValidationError, match="login Gepi"):
        student.full_clean()
    student.gepi_login = "martin.lea"
    student.full_clean()
