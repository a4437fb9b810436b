"""Writes on schools' data. Keyword-only, typed, atomic."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from .grades import parse_grade
from .models import Student, Subject, Teacher, Term, TermAssessment


class ClosedTermError(ValidationError):
    pass


def ensure_term_open(term: Term) -> None:
    if term.is_closed:
        raise ClosedTermError(
            "Ce trimestre est clos : ses notes et appréciations ne sont plus modifiables.",
            code="closed_term",
        )


@transaction.atomic
def assessment_set_value(
    *,
    student: Student,
    subject: Subject,
    term: Term,
    field: str,
    raw_value: str | Decimal | None,
    user: Teacher,
) -> TermAssessment:
    """Save one input (average, behaviour, participation or work) of one student.

    Raises ValidationError (French message) and saves nothing when the value is invalid.
    """
    if field not in TermAssessment.INPUT_FIELDS:
        raise PermissionDenied(f"Unknown assessment field {field!r}")
    ensure_term_open(term)
    value = parse_grade(raw_value, field=field)
    assessment, created = TermAssessment.objects.select_for_update().get_or_create(
        student=student, subject=subject, term=term
    )
    if created or getattr(assessment, field) != value:
        setattr(assessment, field, value)
        assessment.updated_by = user
        assessment.save(update_fields=[field, "updated_by", "updated_at"])
    return assessment
