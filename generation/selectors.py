"""Reads for generation, scoped by the caller (views pass objects already scoped to the user)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Q

from classes.models import Student, TeachingAssignment, Term, TermAssessment
from classes.selectors import StudentRow, class_sheet

from .backends import MODEL_MISSING_USER_MESSAGE
from .models import Appreciation, BannedPhrase, Draft, Feedback, GenerationJob, WorkerState
from .prompts import PromptInputs


@dataclass(frozen=True)
class StudentReadiness:
    student: Student
    inputs: PromptInputs | None
    missing: tuple[str, ...]
    # What is known whether ready or not: (T1, T2, T3) averages and the term's ratings, None
    # where missing (the feedback dataset records them so, never as 0).
    averages: tuple = (None, None, None)
    ratings: dict = field(default_factory=dict)

    @property
    def is_ready(self) -> bool:
        return self.inputs is not None


def prompt_inputs_for_row(*, row: StudentRow, subject_name: str, term: Term) -> StudentReadiness:
    """The model's inputs for one student, or what is missing (in French).

    Ready or not is the class sheet's one definition (StudentRow.missing_labels): the term's
    own inputs. An earlier term without an average is sent as N/A.
    """
    averages: list = [None, None, None]
    for earlier_term, average in row.earlier_averages:
        averages[earlier_term.number - 1] = average
    assessment = row.assessment
    ratings = {name: None for name in TermAssessment.RATING_FIELDS}
    if assessment is not None:
        averages[term.number - 1] = assessment.average
        ratings = {name: getattr(assessment, name) for name in TermAssessment.RATING_FIELDS}
    missing = tuple(row.missing_labels)
    inputs = None
    if not missing:
        inputs = PromptInputs(
            subject_name=subject_name,
            trimester=term.number,
            averages=tuple(averages),
            **ratings,
        )
    return StudentReadiness(row.student, inputs, missing, tuple(averages), ratings)


def class_readiness(
    *, assignment: TeachingAssignment, term: Term, students: list[Student] | None = None
) -> list[StudentReadiness]:
    rows = class_sheet(assignment=assignment, term=term, students=students)
    return [
        prompt_inputs_for_row(row=row, subject_name=assignment.subject.name, term=term)
        for row in rows
    ]


def class_student_names(*, assignment: TeachingAssignment) -> tuple[str, ...]:
    """Every name of the class: a draft quoting any of them is flagged."""
    names: list[str] = []
    for last_name, first_name in assignment.school_class.students.values_list(
        "last_name", "first_name"
    ):
        names.extend([last_name, first_name])
    return tuple(name for name in names if name)


def school_banned_phrases(*, school_id: int) -> tuple[str, ...]:
    return tuple(BannedPhrase.objects.filter(school_id=school_id).values_list("phrase", flat=True))


def active_job(*, assignment: TeachingAssignment, term: Term) -> GenerationJob | None:
    return GenerationJob.objects.filter(
        assignment=assignment, term=term, status__in=GenerationJob.ACTIVE_STATUSES
    ).first()


def job_progress(*, job: GenerationJob) -> dict[str, int]:
    counts = job.drafts.aggregate(
        total=Count("pk"),
        done=Count("pk", filter=~Q(status=Draft.Status.PENDING)),
        generated=Count("pk", filter=Q(status=Draft.Status.GENERATED)),
    )
    return counts


def worker_states() -> list[WorkerState]:
    return list(WorkerState.objects.all())


def model_missing_on_every_worker() -> WorkerState | None:
    """The latest worker state when every generation worker that reported says its model is
    missing (checked at its start); None when one may have it, or none reported yet."""
    states = worker_states()
    if states and all(state.state == WorkerState.State.MISSING for state in states):
        return states[0]
    return None


def job_failed_for_missing_model(*, job: GenerationJob | None) -> bool:
    return (
        job is not None
        and job.status == GenerationJob.Status.FAILED
        and job.error_message == MODEL_MISSING_USER_MESSAGE
    )


def sees_model_setup(*, user) -> bool:
    """Whether the user is told how the model is installed (the platform's or the school's
    administrators); a teacher is told to warn them."""
    return bool(user.is_staff or getattr(user, "is_school_admin", False))


def students_with_final_appreciation(*, assignment: TeachingAssignment, term: Term) -> set[int]:
    return set(
        Appreciation.objects.filter(
            student__school_class_id=assignment.school_class_id,
            subject_id=assignment.subject_id,
            term=term,
            status__in=[Appreciation.Status.VALIDATED, Appreciation.Status.APPROVED],
        ).values_list("student_id", flat=True)
    )


def _number(value) -> float | None:
    return None if value is None else float(value)


def dataset_inputs(
    *, student: Student, assignment: TeachingAssignment, term: Term, readiness: StudentReadiness
) -> dict:
    """The inputs as the `eltorio/appreciation` dataset records them: no identity; a missing
    average or rating is None (the dataset leaves it empty), never 0."""
    ratings = readiness.ratings
    return {
        "subject": assignment.subject.name,
        "level": assignment.school_class.level.name,
        "trimester": term.number,
        "repeating": student.is_repeating,
        "averages": [_number(a) for a in readiness.averages],
        "behaviour": _number(ratings.get("behaviour")),
        "participation": _number(ratings.get("participation")),
        "work": _number(ratings.get("work")),
    }


@dataclass
class ReviewRow:
    readiness: StudentReadiness
    row: StudentRow
    appreciation: Appreciation | None
    feedback: Feedback | None = None
    # Earlier drafts of this student, kept when a new one is asked for ("Régénérer").
    history: list[Draft] = field(default_factory=list)

    @property
    def student(self) -> Student:
        return self.row.student

    @property
    def draft(self) -> Draft | None:
        return self.appreciation.draft if self.appreciation else None

    @property
    def version(self) -> int:
        return self.appreciation.version if self.appreciation else 0

    @property
    def text(self) -> str:
        return self.appreciation.text if self.appreciation else ""


def review_rows(
    *, assignment: TeachingAssignment, term: Term, students: list[Student] | None = None
) -> list[ReviewRow]:
    """Every student of the class with inputs, evolution, appreciation, draft and last feedback.

    A fixed number of queries whatever the class size.
    """
    rows = class_sheet(assignment=assignment, term=term, students=students)
    student_ids = [r.student.pk for r in rows]
    appreciations = {
        a.student_id: a
        for a in Appreciation.objects.filter(
            student_id__in=student_ids, subject_id=assignment.subject_id, term=term
        ).select_related("draft", "validated_by", "returned_by", "approved_by")
    }
    feedback = {}
    for item in Feedback.objects.filter(
        appreciation__in=[a.pk for a in appreciations.values()]
    ).order_by("validated_at"):
        feedback[item.appreciation_id] = item
    history: dict[int, list[Draft]] = {}
    for draft in Draft.objects.filter(
        student_id__in=student_ids,
        subject_id=assignment.subject_id,
        term=term,
        status=Draft.Status.GENERATED,
    ).order_by("-generated_at"):
        history.setdefault(draft.student_id, []).append(draft)
    result = []
    for row in rows:
        appreciation = appreciations.get(row.student.pk)
        current_draft_id = appreciation.draft_id if appreciation else None
        result.append(
            ReviewRow(
                readiness=prompt_inputs_for_row(
                    row=row, subject_name=assignment.subject.name, term=term
                ),
                row=row,
                appreciation=appreciation,
                feedback=feedback.get(appreciation.pk) if appreciation else None,
                history=[d for d in history.get(row.student.pk, []) if d.pk != current_draft_id],
            )
        )
    return result


def head_queue(*, user) -> list[tuple[TeachingAssignment, Term, int, int]]:
    """For a department head: per class and term, validated appréciations awaiting approval.

    Returns (assignment, term, validated count, approved count), open terms only.
    """
    if not user.is_department_head:
        return []
    subject_ids = list(user.headed_subjects.values_list("pk", flat=True))
    counts = (
        Appreciation.objects.filter(
            subject_id__in=subject_ids,
            student__school_class__school_id=user.school_id,
            term__is_closed=False,
            status__in=[Appreciation.Status.VALIDATED, Appreciation.Status.APPROVED],
        )
        .values("student__school_class_id", "subject_id", "term_id")
        .annotate(
            validated=Count("pk", filter=Q(status=Appreciation.Status.VALIDATED)),
            approved=Count("pk", filter=Q(status=Appreciation.Status.APPROVED)),
        )
    )
    by_class: dict[tuple[int, int], list[dict]] = {}
    for c in counts:
        by_class.setdefault((c["student__school_class_id"], c["subject_id"]), []).append(c)
    terms = {t.pk: t for t in Term.objects.filter(pk__in=[c["term_id"] for c in counts])}
    assignments = TeachingAssignment.objects.filter(
        subject_id__in=subject_ids, school_class__school_id=user.school_id
    ).select_related("school_class__level", "subject", "teacher")
    return [
        (assignment, terms[c["term_id"]], c["validated"], c["approved"])
        for assignment in assignments
        for c in by_class.get((assignment.school_class_id, assignment.subject_id), [])
    ]
