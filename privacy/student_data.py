"""A student's data rights (GDPR): export of everything held, erasure, end-of-year purge.

- `student_data_export`: everything the platform holds about one student, as JSON-able data.
- `student_erase`: deletes the student and everything linked to them. The feedback rows (the
  pseudonymous dataset, also the AI Act log of validations) are kept with no link to the
  student: their appreciation/draft links are cut and the student's names are replaced by
  PLACEHOLDER in their texts.
- `year_purge`: removes a finished school year's classes, with their students, grades, drafts,
  appréciations, assignments and generation jobs; keeps the year and its terms (no personal
  data) and the feedback rows, unlinked and scrubbed the same way.

See docs/data-protection.md for what is stored and for how long.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from classes.models import (
    SchoolClass,
    SchoolYear,
    Student,
    Teacher,
    TeachingAssignment,
    TermAssessment,
)
from generation.checks import PLACEHOLDER, name_variants, normalize
from generation.models import Appreciation, Draft, Feedback, GenerationJob

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "appreciation-student-data/1"


# --- Export -----------------------------------------------------------------------------------


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _number(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


def _person(user: Teacher | None) -> dict | None:
    if user is None:
        return None
    return {"id": user.pk, "name": str(user)}


def _term(term) -> dict:
    return {"number": term.number, "label": term.label, "school_year": term.school_year.name}


def student_data_export(*, student: Student) -> dict:
    """Everything held about one student, JSON-serialisable as is (json.dumps needs no encoder).

    Staff data that goes with it (who entered, validated, approved) is included: the student has
    a right to know who wrote their appréciations.
    """
    student = Student.objects.select_related(
        "school_class__school", "school_class__school_year", "school_class__level"
    ).get(pk=student.pk)
    school_class = student.school_class
    year = school_class.school_year
    assessments = (
        TermAssessment.objects.filter(student=student)
        .select_related("subject", "term__school_year", "updated_by")
        .order_by("term__number", "subject__name")
    )
    appreciations = (
        Appreciation.objects.filter(student=student)
        .select_related(
            "subject", "term__school_year", "validated_by", "approved_by", "returned_by"
        )
        .order_by("term__number", "subject__name")
    )
    drafts = (
        Draft.objects.filter(student=student)
        .select_related("subject", "term__school_year", "job__requested_by")
        .order_by("created_at", "pk")
    )
    feedback = (
        Feedback.objects.filter(Q(appreciation__student=student) | Q(draft__student=student))
        .select_related("validated_by")
        .order_by("validated_at", "pk")
    )
    assignments = (
        TeachingAssignment.objects.filter(school_class=school_class)
        .select_related("subject", "teacher")
        .order_by("subject__name")
    )
    return {
        "format": EXPORT_FORMAT,
        "exported_at": _iso(timezone.now()),
        "school": {
            "id": school_class.school_id,
            "name": school_class.school.name,
            "uai": school_class.school.uai,
        },
        "student": {
            "id": student.pk,
            "last_name": student.last_name,
            "first_name": student.first_name,
            "is_repeating": student.is_repeating,
            "external_id": student.external_id,
            "gepi_login": student.gepi_login,
        },
        "class": {
            "id": school_class.pk,
            "name": school_class.name,
            "level": school_class.level.name,
            "school_year": {
                "name": year.name,
                "start_date": _iso(year.start_date),
                "end_date": _iso(year.end_date),
            },
            "teachers": [
                {"subject": a.subject.name, "teacher": _person(a.teacher)} for a in assignments
            ],
        },
        "assessments": [
            {
                "subject": a.subject.name,
                "term": _term(a.term),
                "average": _number(a.average),
                "behaviour": _number(a.behaviour),
                "participation": _number(a.participation),
                "work": _number(a.work),
                "updated_at": _iso(a.updated_at),
                "updated_by": _person(a.updated_by),
            }
            for a in assessments
        ],
        "appreciations": [
            {
                "id": a.pk,
                "subject": a.subject.name,
                "term": _term(a.term),
                "status": a.status,
                "status_label": a.get_status_display(),
                "text": a.text,
                "version": a.version,
                "draft_id": a.draft_id,
                "validated_by": _person(a.validated_by),
                "validated_at": _iso(a.validated_at),
                "approved_by": _person(a.approved_by),
                "approved_at": _iso(a.approved_at),
                "returned_by": _person(a.returned_by),
                "returned_at": _iso(a.returned_at),
                "return_comment": a.return_comment,
                "updated_at": _iso(a.updated_at),
            }
            for a in appreciations
        ],
        "drafts": [
            {
                "id": d.pk,
                "job_id": d.job_id,
                "requested_by": _person(d.job.requested_by),
                "subject": d.subject.name,
                "term": _term(d.term),
                "status": d.status,
                "text": d.text,
                "raw_texts": d.raw_texts,
                "flags": d.flags,
                "attempts": d.attempts,
                "prompt_version": d.prompt_version,
                "prompt_messages": d.prompt_messages,
                "model_base": d.model_base,
                "model_adapter": d.model_adapter,
                "is_test_model": d.is_test_model,
                "created_at": _iso(d.created_at),
                "generated_at": _iso(d.generated_at),
            }
            for d in drafts
        ],
        "feedback": [
            {
                "id": f.pk,
                "appreciation_id": f.appreciation_id,
                "draft_id": f.draft_id,
                "validated_by": _person(f.validated_by),
                "validated_at": _iso(f.validated_at),
                "draft_text": f.draft_text,
                "final_text": f.final_text,
                "edited": f.edited,
                "edit_distance": f.edit_distance,
                "seconds_spent": f.seconds_spent,
                "flags": f.flags,
                "rating": f.rating,
                "reason": f.reason,
                "inputs": f.inputs,
                "prompt_version": f.prompt_version,
                "prompt_messages": f.prompt_messages,
                "model_base": f.model_base,
                "model_adapter": f.model_adapter,
            }
            for f in feedback
        ],
    }


# --- Name scrubbing ---------------------------------------------------------------------------


def _student_name_variants(students: Iterable[Student]) -> list[str]:
    """Normalized names to look for, longest first: "camille dupont", "dupont", "camille"...

    The same variants as the draft checks and the dataset export's name rule
    (generation.checks), so a text the export would call named is scrubbed here.
    """
    variants: set[str] = set()
    for student in students:
        first, last = student.first_name.strip(), student.last_name.strip()
        for name in (f"{first} {last}", f"{last} {first}", first, last):
            variants.update(v for v in name_variants(name) if len(v) >= 2)
    return sorted(variants, key=lambda v: (-len(v), v))


def _names_pattern(variants: list[str]) -> re.Pattern[str] | None:
    if not variants:
        return None
    alternatives = "|".join(r"\s+".join(re.escape(w) for w in v.split()) for v in variants)
    # Whole words, as generation.checks matches them: "Emma" in "d'Emma", not "Pierre" in
    # "Jean-Pierre".
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])")


def scrub_names(text: str, pattern: re.Pattern[str] | None) -> tuple[str, int]:
    """Replace each name `pattern` finds (accent- and case-insensitively) by PLACEHOLDER.

    Returns the text and the number of replacements; the text unchanged when none.
    """
    if not text or pattern is None:
        return text, 0
    composed = unicodedata.normalize("NFC", text)
    # Normalize character by character, remembering where each normalized character came
    # from, so that matches found in the normalized text are replaced in the original one.
    normalized_parts: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(composed):
        part = normalize(char)
        normalized_parts.append(part)
        origin.extend([index] * len(part))
    normalized = "".join(normalized_parts)
    pieces: list[str] = []
    last = 0
    count = 0
    for match in pattern.finditer(normalized):
        start, end = origin[match.start()], origin[match.end() - 1] + 1
        if start < last:
            continue
        pieces.append(composed[last:start])
        pieces.append(PLACEHOLDER)
        last = end
        count += 1
    if not count:
        return text, 0
    pieces.append(composed[last:])
    return "".join(pieces), count


def _scrub_feedback(item: Feedback, pattern: re.Pattern[str] | None) -> bool:
    """Scrub the texts of one feedback row in memory; True when something was replaced."""
    changed = False
    for field_name in ("final_text", "draft_text"):
        text, count = scrub_names(getattr(item, field_name), pattern)
        if count:
            setattr(item, field_name, text)
            changed = True
    return changed


def _linked_feedback(students) -> Q:
    return Q(appreciation__student__in=students) | Q(draft__student__in=students)


def _student_ids_of(item: Feedback) -> set[int]:
    """The students a feedback row is linked to (through its appréciation and its draft)."""
    ids = set()
    if item.appreciation_id is not None:
        ids.add(item.appreciation.student_id)
    if item.draft_id is not None:
        ids.add(item.draft.student_id)
    return ids


# --- Erasure ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureReport:
    student_id: int
    school_id: int
    assessments: int
    appreciations: int
    drafts: int
    feedback_unlinked: int
    feedback_scrubbed: int

    def counts(self) -> dict[str, int]:
        data = asdict(self)
        del data["student_id"], data["school_id"]
        return data


@transaction.atomic
def student_erase(
    *, student: Student, user: Teacher | None, request: HttpRequest | None = None
) -> ErasureReport:
    """Erase one student (GDPR art. 17): the student row and everything linked to it.

    The feedback rows are kept, pseudonymous: their links to the student's appréciations and
    drafts are cut, and the student's first and last names are replaced by PLACEHOLDER
    (accent- and case-insensitive, whole words) in the texts of the feedback rows of the
    student's class (theirs, and a classmate's that would name them). Recorded in the audit
    log (ids and counts, never the name). `user` is who asked (None from a command).
    """
    student = (
        Student.objects.select_for_update(of=("self",))
        .select_related("school_class")
        .get(pk=student.pk)
    )
    school_id = student.school_class.school_id
    pattern = _names_pattern(_student_name_variants([student]))
    classmates = Student.objects.filter(school_class_id=student.school_class_id)
    unlinked = scrubbed = 0
    # No DISTINCT: PostgreSQL refuses it with FOR UPDATE, and two forward joins cannot repeat
    # a row.
    for item in (
        Feedback.objects.select_for_update(of=("self",))
        .filter(_linked_feedback(classmates))
        .select_related("appreciation", "draft")
    ):
        fields = []
        if item.appreciation_id is not None and item.appreciation.student_id == student.pk:
            item.appreciation = None
            fields.append("appreciation")
        if item.draft_id is not None and item.draft.student_id == student.pk:
            item.draft = None
            fields.append("draft")
        if fields:
            unlinked += 1
        if _scrub_feedback(item, pattern):
            fields += ["final_text", "draft_text"]
            scrubbed += 1
        if fields:
            item.save(update_fields=fields)
    report = ErasureReport(
        student_id=student.pk,
        school_id=school_id,
        assessments=TermAssessment.objects.filter(student=student).count(),
        appreciations=Appreciation.objects.filter(student=student).count(),
        drafts=Draft.objects.filter(student=student).count(),
        feedback_unlinked=unlinked,
        feedback_scrubbed=scrubbed,
    )
    student.delete()
    audit_record(
        event=AuditEvent.Event.STUDENT_ERASED,
        actor=user,
        request=request,
        school=school_id,
        student_id=report.student_id,
        school_class_id=student.school_class_id,
        **report.counts(),
    )
    logger.info(
        "Student %s erased by user %s: %s",
        report.student_id,
        user.pk if user is not None else "-",
        report.counts(),
    )
    return report


# --- End-of-year purge ------------------------------------------------------------------------


class PurgeRefused(Exception):
    """The year cannot be purged without --force; the message is in French and English."""


@dataclass(frozen=True)
class PurgeReport:
    school_year_id: int
    school_year: str
    dry_run: bool
    classes: int
    assignments: int
    students: int
    assessments: int
    appreciations: int
    drafts: int
    generation_jobs: int
    feedback_unlinked: int
    feedback_scrubbed: int

    def counts(self) -> dict[str, int]:
        data = asdict(self)
        for key in ("school_year_id", "school_year", "dry_run"):
            del data[key]
        return data


def year_purge_refusals(*, school_year: SchoolYear, today: date | None = None) -> list[str]:
    """Why the year should not be purged yet (French / English); empty when it may be."""
    today = today or timezone.localdate()
    reasons = []
    if school_year.end_date >= today:
        reasons.append(
            f"L'année scolaire {school_year.name} n'est pas terminée (fin le "
            f"{school_year.end_date:%d/%m/%Y}). / The school year {school_year.name} is not "
            f"finished (it ends on {school_year.end_date.isoformat()})."
        )
    open_terms = [term.number for term in school_year.terms.all() if not term.is_closed]
    if open_terms:
        numbers = ", ".join(str(n) for n in open_terms)
        reasons.append(
            f"Trimestre(s) non clos : {numbers}. Closez-les dans l'administration avant la "
            f"purge. / Term(s) not closed: {numbers}. Close them in the admin first."
        )
    return reasons


@transaction.atomic
def year_purge(
    *,
    school_year: SchoolYear,
    dry_run: bool = False,
    force: bool = False,
    user: Teacher | None = None,
    today: date | None = None,
) -> PurgeReport:
    """Remove a finished school year's classes and everything in them; keep the feedback.

    Deleted: the year's classes, their teaching assignments and generation jobs, their students
    with their term assessments, drafts and appréciations. Kept: the school year and its terms
    (no personal data; a second purge finds nothing), and the feedback rows, unlinked and with
    the class's student names replaced by PLACEHOLDER. Raises PurgeRefused when the year is not
    finished or a term is still open, unless `force`. `dry_run` counts and changes nothing.
    """
    reasons = year_purge_refusals(school_year=school_year, today=today)
    if reasons and not force:
        raise PurgeRefused(
            "\n".join(
                [
                    *reasons,
                    "Relancez avec --force pour purger quand même. / "
                    "Run again with --force to purge anyway.",
                ]
            )
        )
    classes = SchoolClass.objects.filter(school_year=school_year)
    students = Student.objects.filter(school_class__in=classes)
    assignments = TeachingAssignment.objects.filter(school_class__in=classes)
    feedback_rows = Feedback.objects.filter(_linked_feedback(students))
    if not dry_run:
        feedback_rows = feedback_rows.select_for_update(of=("self",))
    members_by_class: dict[int, list[Student]] = {}
    class_of_student: dict[int, int] = {}
    for student in students:
        members_by_class.setdefault(student.school_class_id, []).append(student)
        class_of_student[student.pk] = student.school_class_id
    patterns = {
        class_id: _names_pattern(_student_name_variants(members))
        for class_id, members in members_by_class.items()
    }
    unlinked = scrubbed = 0
    for item in feedback_rows.select_related("appreciation", "draft"):
        class_ids = {class_of_student[pk] for pk in _student_ids_of(item) if pk in class_of_student}
        item.appreciation = None
        item.draft = None
        fields = ["appreciation", "draft"]
        unlinked += 1
        changed = False
        for class_id in sorted(class_ids):
            changed = _scrub_feedback(item, patterns.get(class_id)) or changed
        if changed:
            scrubbed += 1
            fields += ["final_text", "draft_text"]
        if not dry_run:
            item.save(update_fields=fields)
    report = PurgeReport(
        school_year_id=school_year.pk,
        school_year=school_year.name,
        dry_run=dry_run,
        classes=classes.count(),
        assignments=assignments.count(),
        students=students.count(),
        assessments=TermAssessment.objects.filter(student__in=students).count(),
        appreciations=Appreciation.objects.filter(student__in=students).count(),
        drafts=Draft.objects.filter(Q(student__in=students) | Q(job__assignment__in=assignments))
        .distinct()
        .count(),
        generation_jobs=GenerationJob.objects.filter(assignment__in=assignments).count(),
        feedback_unlinked=unlinked,
        feedback_scrubbed=scrubbed,
    )
    if dry_run:
        return report
    classes.delete()  # cascades: assignments, jobs, students, assessments, drafts, appréciations
    audit_record(
        event=AuditEvent.Event.YEAR_PURGED,
        actor=user,
        school=school_year.school_id,
        school_year_id=school_year.pk,
        school_year=school_year.name,
        forced=bool(reasons),
        **report.counts(),
    )
    logger.info(
        "School year %s (%s) of school %s purged: %s",
        school_year.pk,
        school_year.name,
        school_year.school_id,
        report.counts(),
    )
    return report
