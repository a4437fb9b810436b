"""Teachers' pages: dashboard, class table with in-place editing."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from . import selectors, services
from .access import access_assignment_and_term_by_id, access_student_by_id
from .grades import format_grade
from .models import TeachingAssignment, Term, TermAssessment

GRADE_COLUMNS = [
    ("average", "Moyenne /20"),
    ("behaviour", "Comportement /10"),
    ("participation", "Participation /10"),
    ("work", "Travail /10"),
]


@dataclass
class GradeCell:
    student_pk: int
    field: str
    label: str
    value: str
    url: str
    editable: bool
    column: int
    error: str = ""
    saved: bool = False


def _cells(
    *, row: selectors.StudentRow, assignment: TeachingAssignment, term: Term, editable: bool
) -> list[GradeCell]:
    cells = []
    for column, (field, label) in enumerate(GRADE_COLUMNS):
        value = getattr(row.assessment, field) if row.assessment else None
        cells.append(
            GradeCell(
                student_pk=row.student.pk,
                field=field,
                label=f"{label} — {row.student.last_name} {row.student.first_name}",
                value=format_grade(value),
                url=reverse(
                    "classes:cell_update",
                    args=[assignment.pk, term.pk, row.student.pk, field],
                ),
                editable=editable,
                column=column,
            )
        )
    return cells


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    term = None
    terms = []
    if user.school_id:
        terms = list(
            Term.objects.filter(school_year__school_id=user.school_id)
            .select_related("school_year")
            .order_by("-school_year__start_date", "number")
        )
        chosen = request.GET.get("trimestre")
        if chosen and chosen.isdigit():
            term = next((t for t in terms if t.pk == int(chosen)), None)
        term = term or selectors.current_term(school=user.school)
    own = headed = []
    if term is not None:
        own = list(selectors.with_completion(selectors.own_assignments(user=user), term=term))
        headed = list(selectors.with_completion(selectors.headed_assignments(user=user), term=term))
    return render(
        request,
        "classes/dashboard.html",
        {"term": term, "terms": terms, "own_assignments": own, "headed_assignments": headed},
    )


@login_required
@require_GET
def class_page(request: HttpRequest, assignment_pk: int, term_pk: int) -> HttpResponse:
    assignment, term = access_assignment_and_term_by_id(
        request.user, assignment_pk, term_pk, scope="visible"
    )
    editable = selectors.can_edit_assessments(user=request.user, assignment=assignment, term=term)
    rows = selectors.class_sheet(assignment=assignment, term=term)
    for row in rows:
        row.cells = _cells(row=row, assignment=assignment, term=term, editable=editable)
    complete_count = sum(1 for row in rows if row.is_complete)
    return render(
        request,
        "classes/class_page.html",
        {
            "assignment": assignment,
            "term": term,
            "terms": selectors.terms_of_year(school_class=assignment.school_class),
            "rows": rows,
            "earlier_terms": [t for t, _ in rows[0].earlier_averages] if rows else [],
            "columns": GRADE_COLUMNS,
            "editable": editable,
            "is_owner": assignment.teacher_id == request.user.pk,
            "complete_count": complete_count,
        },
    )


@login_required
@require_POST
def cell_update(
    request: HttpRequest, assignment_pk: int, term_pk: int, student_pk: int, field: str
) -> HttpResponse:
    """Save one cell; answers the cell fragment (with a French error if the value is bad)."""
    if field not in TermAssessment.INPUT_FIELDS:
        raise Http404("Unknown field")
    # Only the assignment's own teacher edits: anyone else gets the same 404 as a missing object.
    assignment, term = access_assignment_and_term_by_id(
        request.user, assignment_pk, term_pk, scope="own"
    )
    student = access_student_by_id(assignment, student_pk)
    raw_value = request.POST.get("value", "")
    error = ""
    try:
        services.assessment_set_value(
            student=student,
            subject=assignment.subject,
            term=term,
            field=field,
            raw_value=raw_value,
            user=request.user,
        )
    except ValidationError as exc:
        error = " ".join(exc.messages)
    row = selectors.student_row(assignment=assignment, term=term, student=student)
    editable = selectors.can_edit_assessments(user=request.user, assignment=assignment, term=term)
    cell = next(
        c
        for c in _cells(row=row, assignment=assignment, term=term, editable=editable)
        if c.field == field
    )
    if error:
        cell.error = error
        cell.value = raw_value  # give the teacher back what they typed, to correct it
    else:
        cell.saved = True
    # The page's « N / M élèves ont des saisies complètes » stays true without a reload.
    complete_count = (
        selectors.with_completion(TeachingAssignment.objects.filter(pk=assignment.pk), term=term)
        .get()
        .complete_count
    )
    return render(
        request,
        "classes/class_page.html#cell_response",
        {"cell": cell, "row": row, "complete_count": complete_count},
    )
