"""Class-list import: what a parsed file would change (preview), then applying it.

Students are matched within the assignment's class: first by identifiant (when the file and
the student both have one), then by name (casefold, no accents, spaces and hyphens collapsed).
Students of the class that the file does not list are left alone, never deleted. An empty
cell, or a column the file lacks, leaves the stored value as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from .grades import format_grade
from .imports import (
    COLUMN_LABELS,
    GRADE_FIELDS,
    ParsedFile,
    ParsedRow,
    normalize_name,
    parsed_from_data,
)
from .models import Student, Teacher, TeachingAssignment, Term, TermAssessment
from .services import ensure_term_open


@dataclass(frozen=True)
class FieldChange:
    field: str
    label: str
    old: str
    new: str


@dataclass
class PlannedStudent:
    row: ParsedRow
    student: Student | None  # None: to be created
    assessment: TermAssessment | None = None  # the current one, if any
    changes: list[FieldChange] = field(default_factory=list)
    student_updates: dict[str, Any] = field(default_factory=dict)
    assessment_updates: dict[str, Decimal] = field(default_factory=dict)

    @property
    def line(self) -> int:
        return self.row.line

    @property
    def last_name(self) -> str:
        return self.student.last_name if self.student else self.row.last_name

    @property
    def first_name(self) -> str:
        return self.student.first_name if self.student else self.row.first_name

    @property
    def name_in_file(self) -> str:
        """The file's name when it is not the stored one (student found by identifiant)."""
        if self.student is None:
            return ""
        stored = (normalize_name(self.student.last_name), normalize_name(self.student.first_name))
        return "" if stored == self.row.key else f"{self.row.last_name} {self.row.first_name}"


@dataclass
class ImportPlan:
    columns: tuple[str, ...]
    ignored_columns: tuple[str, ...]
    to_create: list[PlannedStudent] = field(default_factory=list)
    to_update: list[PlannedStudent] = field(default_factory=list)
    unchanged: list[PlannedStudent] = field(default_factory=list)
    absent: list[Student] = field(default_factory=list)  # in the class, not in the file
    errors: list[str] = field(default_factory=list)

    @property
    def is_valid(self) -> bool:
        return not self.errors

    @property
    def has_changes(self) -> bool:
        return bool(self.to_create or self.to_update)

    @property
    def column_labels(self) -> list[str]:
        return [COLUMN_LABELS[c] for c in self.columns]


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int

    @property
    def message(self) -> str:
        """'12 élèves créés, 30 mis à jour'."""
        if not self.created and not self.updated:
            return "Import terminé : aucun changement."
        plural = "s" if self.created > 1 else ""
        created = f"{self.created} élève{plural} créé{plural}"
        updated = f"{self.updated} mis à jour"
        return f"Import terminé : {created}, {updated}."


def _display(column: str, value: Any) -> str:
    if value is None or value == "":
        return "—"
    if column in GRADE_FIELDS:
        return format_grade(value)
    if column == "is_repeating":
        return "oui" if value else "non"
    return str(value)


def _build_plan(
    *, assignment: TeachingAssignment, term: Term, parsed: ParsedFile, for_update: bool
) -> ImportPlan:
    plan = ImportPlan(columns=parsed.columns, ignored_columns=parsed.ignored_columns)
    if parsed.errors:
        plan.errors = parsed.error_messages
        return plan
    students_query = Student.objects.filter(school_class_id=assignment.school_class_id)
    assessments_query = TermAssessment.objects.filter(
        student__school_class_id=assignment.school_class_id,
        subject_id=assignment.subject_id,
        term=term,
    )
    if for_update:
        students_query = students_query.select_for_update()
        assessments_query = assessments_query.select_for_update()
    students = list(students_query.order_by("sort_key", "pk"))
    assessments = {a.student_id: a for a in assessments_query}

    by_external_id: dict[str, list[Student]] = {}
    by_name: dict[tuple[str, str], list[Student]] = {}
    for student in students:
        if student.external_id:
            by_external_id.setdefault(student.external_id, []).append(student)
        key = (normalize_name(student.last_name), normalize_name(student.first_name))
        by_name.setdefault(key, []).append(student)

    matched: dict[int, Student] = {}
    used: set[int] = set()
    for index, row in enumerate(parsed.rows):
        candidates = by_external_id.get(row.external_id or "", [])
        if len(candidates) == 1:
            matched[index] = candidates[0]
            used.add(candidates[0].pk)
    for index, row in enumerate(parsed.rows):
        if index in matched:
            continue
        candidates = [s for s in by_name.get(row.key, []) if s.pk not in used]
        if len(candidates) > 1:
            plan.errors.append(
                f"Ligne {row.line} : plusieurs élèves de la classe s'appellent "
                f"« {row.last_name} {row.first_name} » : ajoutez la colonne « identifiant » "
                "pour les distinguer."
            )
        elif candidates:
            matched[index] = candidates[0]
            used.add(candidates[0].pk)
    if plan.errors:
        return plan

    for index, row in enumerate(parsed.rows):
        student = matched.get(index)
        planned = PlannedStudent(row=row, student=student)
        if student is not None:
            planned.assessment = assessments.get(student.pk)
        for column, new in (
            ("is_repeating", row.is_repeating),
            ("external_id", row.external_id),
            ("gepi_login", row.gepi_login),
        ):
            old = getattr(student, column) if student else None
            if new is not None and new != old:
                planned.student_updates[column] = new
                planned.changes.append(
                    FieldChange(
                        column, COLUMN_LABELS[column], _display(column, old), _display(column, new)
                    )
                )
        for column, new in row.grades.items():
            old = getattr(planned.assessment, column) if planned.assessment else None
            if new != old:
                planned.assessment_updates[column] = new
                planned.changes.append(
                    FieldChange(
                        column, COLUMN_LABELS[column], _display(column, old), _display(column, new)
                    )
                )
        if student is None:
            plan.to_create.append(planned)
        elif planned.changes:
            plan.to_update.append(planned)
        else:
            plan.unchanged.append(planned)
    plan.absent = [s for s in students if s.pk not in used]
    return plan


def import_preview(*, assignment: TeachingAssignment, term: Term, parsed: ParsedFile) -> ImportPlan:
    """What importing `parsed` would do: nothing is written."""
    return _build_plan(assignment=assignment, term=term, parsed=parsed, for_update=False)


@transaction.atomic
def import_apply(
    *,
    assignment: TeachingAssignment,
    term: Term,
    plan_data: dict[str, Any],
    user: Teacher,
) -> ImportResult:
    """Apply a previewed import (`ParsedFile.to_data()`): all of it, or nothing.

    Everything is checked again (term open, every value, matching against the class as it is
    now). Raises ValidationError (French messages) and writes nothing when something is wrong.
    """
    if assignment.teacher_id != user.pk:
        raise PermissionDenied("Only the assignment's teacher imports into it")
    term = Term.objects.select_for_update().get(pk=term.pk)
    ensure_term_open(term)
    parsed = parsed_from_data(plan_data)
    plan = _build_plan(assignment=assignment, term=term, parsed=parsed, for_update=True)
    if plan.errors:
        raise ValidationError(plan.errors, code="invalid_import")

    new_assessments = []
    for planned in plan.to_create:
        student = Student.objects.create(
            school_class_id=assignment.school_class_id,
            last_name=planned.row.last_name,
            first_name=planned.row.first_name,
            is_repeating=planned.student_updates.get("is_repeating", False),
            external_id=planned.student_updates.get("external_id", ""),
            gepi_login=planned.student_updates.get("gepi_login", ""),
        )
        if planned.assessment_updates:
            new_assessments.append(_new_assessment(student, assignment, term, planned, user))
    for planned in plan.to_update:
        student = planned.student
        if planned.student_updates:
            for column, value in planned.student_updates.items():
                setattr(student, column, value)
            student.save(update_fields=list(planned.student_updates))
        if not planned.assessment_updates:
            continue
        assessment = planned.assessment
        if assessment is None:
            new_assessments.append(_new_assessment(student, assignment, term, planned, user))
            continue
        for column, value in planned.assessment_updates.items():
            setattr(assessment, column, value)
        assessment.updated_by = user
        assessment.save(update_fields=[*planned.assessment_updates, "updated_by", "updated_at"])
    TermAssessment.objects.bulk_create(new_assessments)
    return ImportResult(
        created=len(plan.to_create), updated=len(plan.to_update), unchanged=len(plan.unchanged)
    )


def _new_assessment(
    student: Student,
    assignment: TeachingAssignment,
    term: Term,
    planned: PlannedStudent,
    user: Teacher,
) -> TermAssessment:
    return TermAssessment(
        student=student,
        subject_id=assignment.subject_id,
        term=term,
        updated_by=user,
        **planned.assessment_updates,
    )
