"""What may leave the platform, and for whom.

Report cards: per class × subject × term (or per class, every subject), only final
appréciations: validated ones, or approved ones where the school requires a department head's
approval. Every other student of the class is listed with the reason, never dropped silently.

The feedback dataset: exports.dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.db import models

from classes.models import (
    School,
    SchoolClass,
    Student,
    Subject,
    TeachingAssignment,
    Term,
    TermAssessment,
)

# The checks of the drafts, reused on the teachers' final texts.
from generation.models import Appreciation

from .builders import (
    MissingLine,
    ReportHeading,
    ReportLine,
    copy_all_text,
    gepi_line_problem,
)


class MissingReason(models.TextChoices):
    """Why a student's appréciation is not in the files (labels shown to teachers)."""

    NONE = "none", "Pas encore d'appréciation"
    TO_REVIEW = "to_review", "Brouillon à relire, pas encore validé"
    RETURNED = "returned", "Renvoyée par le responsable de discipline, à corriger"
    NOT_APPROVED = "not_approved", "Validée, en attente de l'approbation du responsable"
    EMPTY = "empty", "Appréciation vide"


def exportable_statuses(*, school: School) -> tuple[str, ...]:
    """Approved only where the school requires a department head's approval."""
    if school.requires_head_approval:
        return (Appreciation.Status.APPROVED,)
    return (Appreciation.Status.VALIDATED, Appreciation.Status.APPROVED)


def _missing_reason(appreciation: Appreciation | None, *, statuses: tuple[str, ...]) -> str | None:
    if appreciation is None:
        return MissingReason.NONE
    if appreciation.status in statuses:
        return None if appreciation.text.strip() else MissingReason.EMPTY
    return {
        Appreciation.Status.GENERATED: MissingReason.TO_REVIEW,
        Appreciation.Status.RETURNED: MissingReason.RETURNED,
        Appreciation.Status.VALIDATED: MissingReason.NOT_APPROVED,
    }.get(appreciation.status, MissingReason.NONE)


@dataclass(frozen=True)
class ExportEntry:
    student: Student
    subject: Subject
    appreciation: Appreciation
    average: Decimal | None
    max_chars: int

    @property
    def text(self) -> str:
        return self.appreciation.text

    @property
    def char_count(self) -> int:
        return len(self.appreciation.text)

    @property
    def over_limit(self) -> bool:
        return self.char_count > self.max_chars


@dataclass(frozen=True)
class MissingEntry:
    student: Student
    subject: Subject
    reason: str

    @property
    def reason_label(self) -> str:
        return MissingReason(self.reason).label


@dataclass
class CopyBlock:
    """One subject's appréciations in class order, "" where a student has none (yet)."""

    subject: Subject
    rows: list[tuple[Student, str]] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [text for _, text in self.rows]

    @property
    def all_text(self) -> str:
        return copy_all_text(self.texts)


@dataclass
class ClassExport:
    """One class and term, for one subject (subject set) or every subject of the class."""

    school: School
    school_class: SchoolClass
    term: Term
    subject: Subject | None
    students: list[Student]
    subjects: list[Subject]
    entries: list[ExportEntry]
    missing: list[MissingEntry]
    # subject id -> its teacher(s) in the class, for the printed page.
    teachers: dict[int, str] = field(default_factory=dict)

    @property
    def max_chars(self) -> int:
        return self.school.appreciation_max_chars

    @property
    def requires_approval(self) -> bool:
        return self.school.requires_head_approval

    @property
    def expected_count(self) -> int:
        return len(self.students) * len(self.subjects)

    @property
    def over_limit(self) -> list[ExportEntry]:
        return [entry for entry in self.entries if entry.over_limit]

    def heading(self) -> ReportHeading:
        return ReportHeading(
            school=self.school.name,
            school_class=self.school_class.name,
            term=self.term.label,
            school_year=self.term.school_year.name,
            subject=self.subject.name if self.subject else None,
            teacher=self.teachers.get(self.subject.pk, "") if self.subject else "",
        )

    def _line(self, entry: ExportEntry, *, identifier: str) -> ReportLine:
        return ReportLine(
            last_name=entry.student.last_name,
            first_name=entry.student.first_name,
            identifier=identifier,
            subject=entry.subject.name,
            average=entry.average,
            text=entry.text,
            student_key=entry.student.pk,
            teacher=self.teachers.get(entry.subject.pk, ""),
        )

    def _gepi_checked(self) -> list[tuple[ExportEntry, ReportLine, str | None]]:
        checked = []
        for entry in self.entries:
            line = self._line(entry, identifier=entry.student.gepi_login.strip())
            checked.append((entry, line, gepi_line_problem(line)))
        return checked

    @property
    def gepi_excluded(self) -> list[tuple[ExportEntry, str]]:
        """Exportable, but not in Gepi's file (no Gepi login, a line PHP would cut), with the
        reason: listed, never silently left out, and never a file Gepi refuses."""
        return [(entry, problem) for entry, _, problem in self._gepi_checked() if problem]

    def lines(self, *, gepi: bool = False) -> list[ReportLine]:
        """The spreadsheets' identifier is the school's (INE…); Gepi's file needs the login."""
        if gepi:
            return [line for _, line, problem in self._gepi_checked() if problem is None]
        return [self._line(e, identifier=e.student.external_id.strip()) for e in self.entries]

    def missing_lines(self) -> list[MissingLine]:
        return [
            MissingLine(
                last_name=item.student.last_name,
                first_name=item.student.first_name,
                subject=item.subject.name,
                reason=item.reason_label,
            )
            for item in self.missing
        ]

    def copy_blocks(self) -> list[CopyBlock]:
        texts = {(e.student.pk, e.subject.pk): e.text for e in self.entries}
        return [
            CopyBlock(
                subject=subject,
                rows=[(s, texts.get((s.pk, subject.pk), "")) for s in self.students],
            )
            for subject in self.subjects
        ]


def class_subjects(*, school_class: SchoolClass) -> list[Subject]:
    """The subjects taught in the class (one per subject, even with several teachers)."""
    return list(
        Subject.objects.filter(
            pk__in=TeachingAssignment.objects.filter(school_class=school_class).values("subject")
        ).order_by("name")
    )


def _class_teachers(*, school_class: SchoolClass, subjects: list[Subject]) -> dict[int, str]:
    """Each subject's teacher(s) in the class (several when a subject is shared), one query."""
    names: dict[int, list[str]] = {}
    for assignment in TeachingAssignment.objects.filter(
        school_class=school_class, subject__in=subjects
    ).select_related("teacher"):
        names.setdefault(assignment.subject_id, []).append(str(assignment.teacher))
    return {subject_id: ", ".join(sorted(set(items))) for subject_id, items in names.items()}


def _class_export(
    *,
    school_class: SchoolClass,
    term: Term,
    subjects: list[Subject],
    subject: Subject | None,
    teachers: dict[int, str],
) -> ClassExport:
    """Students, appréciations and averages in three queries whatever the class size."""
    school = school_class.school
    statuses = exportable_statuses(school=school)
    students = list(school_class.students.order_by("sort_key", "pk"))
    subject_ids = [s.pk for s in subjects]
    appreciations = {
        (a.student_id, a.subject_id): a
        for a in Appreciation.objects.filter(
            student__school_class=school_class, subject_id__in=subject_ids, term=term
        )
    }
    averages = {
        (student_id, subject_id): average
        for student_id, subject_id, average in TermAssessment.objects.filter(
            student__school_class=school_class, subject_id__in=subject_ids, term=term
        ).values_list("student_id", "subject_id", "average")
    }
    entries: list[ExportEntry] = []
    missing: list[MissingEntry] = []
    for student in students:
        for item in subjects:
            appreciation = appreciations.get((student.pk, item.pk))
            reason = _missing_reason(appreciation, statuses=statuses)
            if reason is not None:
                missing.append(MissingEntry(student=student, subject=item, reason=reason))
                continue
            entries.append(
                ExportEntry(
                    student=student,
                    subject=item,
                    appreciation=appreciation,
                    average=averages.get((student.pk, item.pk)),
                    max_chars=school.appreciation_max_chars,
                )
            )
    return ClassExport(
        school=school,
        school_class=school_class,
        term=term,
        subject=subject,
        students=students,
        subjects=subjects,
        entries=entries,
        missing=missing,
        teachers=teachers,
    )


def assignment_export(*, assignment: TeachingAssignment, term: Term) -> ClassExport:
    """One class × subject × term (the assignment comes already scoped to the user)."""
    return _class_export(
        school_class=assignment.school_class,
        term=term,
        subjects=[assignment.subject],
        subject=assignment.subject,
        # The page is this teacher's, even where a colleague shares the subject in the class.
        teachers={assignment.subject_id: str(assignment.teacher)},
    )


def class_export(*, school_class: SchoolClass, term: Term) -> ClassExport:
    """Every subject of one class for one term (the class council)."""
    subjects = class_subjects(school_class=school_class)
    return _class_export(
        school_class=school_class,
        term=term,
        subjects=subjects,
        subject=None,
        teachers=_class_teachers(school_class=school_class, subjects=subjects),
    )
