"""Reads, always scoped to the user's school and role."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from .models import (
    SchoolClass,
    Student,
    Subject,
    Teacher,
    TeachingAssignment,
    Term,
    TermAssessment,
)


def subjects_for_school(*, school) -> QuerySet[Subject]:
    return Subject.objects.filter(Q(school=None) | Q(school=school))


def current_term(*, school, today: date | None = None) -> Term | None:
    """The latest term of the school that has started; else the first one to come."""
    today = today or timezone.localdate()
    terms = Term.objects.filter(school_year__school=school).select_related("school_year")
    started = terms.filter(start_date__lte=today).order_by("-start_date").first()
    return started or terms.order_by("start_date").first()


def terms_of_year(*, school_class: SchoolClass) -> QuerySet[Term]:
    return Term.objects.filter(school_year_id=school_class.school_year_id).order_by("number")


def own_assignments(*, user: Teacher) -> QuerySet[TeachingAssignment]:
    return TeachingAssignment.objects.filter(
        teacher=user, school_class__school_id=user.school_id
    ).select_related("school_class__level", "school_class__school_year", "subject", "teacher")


def headed_assignments(*, user: Teacher, include_own: bool = False) -> QuerySet[TeachingAssignment]:
    """The assignments in the subjects a department head heads (others' ones by default)."""
    if not user.is_department_head:
        return TeachingAssignment.objects.none()
    queryset = TeachingAssignment.objects.filter(
        school_class__school_id=user.school_id,
        subject__in=user.headed_subjects.all(),
    ).select_related("school_class__level", "school_class__school_year", "subject", "teacher")
    return queryset if include_own else queryset.exclude(teacher=user)


def visible_assignments(*, user: Teacher) -> QuerySet[TeachingAssignment]:
    """Every assignment the user may open: their own, plus those of the subjects they head."""
    if not user.is_authenticated or user.school_id is None:
        return TeachingAssignment.objects.none()
    query = Q(teacher=user)
    if user.is_department_head:
        query |= Q(subject__in=user.headed_subjects.all())
    return TeachingAssignment.objects.filter(
        query, school_class__school_id=user.school_id
    ).select_related("school_class__level", "school_class__school_year", "subject", "teacher")


def term_of_class(*, school_class: SchoolClass, term_pk: int) -> Term | None:
    """One term of the class's school year (None for another year's term)."""
    return (
        terms_of_year(school_class=school_class).filter(pk=term_pk).select_related("school_year")
    ).first()


def term_for_assignment(*, assignment: TeachingAssignment, term_pk: int) -> Term | None:
    return term_of_class(school_class=assignment.school_class, term_pk=term_pk)


def can_edit_assessments(*, user: Teacher, assignment: TeachingAssignment, term: Term) -> bool:
    return assignment.teacher_id == user.pk and not term.is_closed


# "Ready to draft", the one definition: the dashboard's counts, the class page, the review page
# and job creation all read it from here. The current term's average, behaviour, participation
# and work are required; earlier terms' averages are optional (a student who joined the class
# mid-year has none, and the prompt says N/A, as the model card's form does).
READY_TO_DRAFT_FIELDS = TermAssessment.INPUT_FIELDS


def draft_missing_labels(assessment: TermAssessment | None) -> list[str]:
    """What a student still lacks before a draft can be asked for (French labels, in column
    order); empty means ready."""
    return [
        str(TermAssessment._meta.get_field(name).verbose_name)
        for name in READY_TO_DRAFT_FIELDS
        if assessment is None or getattr(assessment, name) is None
    ]


def ready_to_draft_condition(*, term: Term, through: str = "", **extra) -> Q:
    """The same definition as a database condition on the assessments reached through
    `through` (e.g. "school_class__students__"), for counts computed in SQL."""
    lookups = {f"{through}assessments__term": term}
    for name in READY_TO_DRAFT_FIELDS:
        lookups[f"{through}assessments__{name}__isnull"] = False
    lookups.update({f"{through}assessments__{key}": value for key, value in extra.items()})
    return Q(**lookups)


def with_completion(
    assignments: QuerySet[TeachingAssignment], *, term: Term
) -> QuerySet[TeachingAssignment]:
    """Annotate each assignment with its number of students and of students ready to draft."""
    ready = ready_to_draft_condition(
        term=term, through="school_class__students__", subject=F("subject")
    )
    return assignments.filter(school_class__school_year_id=term.school_year_id).annotate(
        student_count=Count("school_class__students", distinct=True),
        complete_count=Count("school_class__students", filter=ready, distinct=True),
    )


@dataclass
class StudentRow:
    student: Student
    assessment: TermAssessment | None
    earlier_averages: list[tuple[Term, object]] = field(default_factory=list)

    @property
    def is_complete(self) -> bool:
        """Ready to draft (see READY_TO_DRAFT_FIELDS): earlier averages are not needed."""
        return not self.missing_labels

    @property
    def missing_labels(self) -> list[str]:
        return draft_missing_labels(self.assessment)


def class_sheet(
    *, assignment: TeachingAssignment, term: Term, students: list[Student] | None = None
) -> list[StudentRow]:
    """The class table: each student's inputs for the term and their earlier averages.

    The evolution over the year is derived from the earlier terms, never stored twice.
    Three queries whatever the class size (students, terms, assessments).
    """
    if students is None:
        students = list(assignment.school_class.students.order_by("sort_key", "pk"))
    earlier_terms = list(
        terms_of_year(school_class=assignment.school_class).filter(number__lt=term.number)
    )
    assessments = TermAssessment.objects.filter(
        student__in=[s.pk for s in students],
        subject_id=assignment.subject_id,
        term__in=[term, *earlier_terms],
    )
    by_key = {(a.student_id, a.term_id): a for a in assessments}
    rows = []
    for student in students:
        earlier = []
        for earlier_term in earlier_terms:
            found = by_key.get((student.pk, earlier_term.pk))
            earlier.append((earlier_term, found.average if found else None))
        rows.append(
            StudentRow(
                student=student,
                assessment=by_key.get((student.pk, term.pk)),
                earlier_averages=earlier,
            )
        )
    return rows


def student_row(*, assignment: TeachingAssignment, term: Term, student: Student) -> StudentRow:
    return class_sheet(assignment=assignment, term=term, students=[student])[0]
