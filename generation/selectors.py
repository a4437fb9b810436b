"""Reads for generation, scoped by the caller (views pass objects already scoped to the user)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q

from classes.models import Student, TeachingAssignment, Term
from classes.selectors import StudentRow, class_sheet

from .models import BannedPhrase, Draft, GenerationJob, WorkerState
from .prompts import PromptInputs


@dataclass(frozen=True)
class StudentReadiness:
    student: Student
    inputs: PromptInputs | None
    missing: tuple[str, ...]

    @property
    def is_ready(self) -> bool:
        return self.inputs is not None


def prompt_inputs_for_row(*, row: StudentRow, subject_name: str, term: Term) -> StudentReadiness:
    """The model's inputs for one student, or what is missing (in French)."""
    missing = list(row.missing_labels)
    averages = [None, None, None]
    for earlier_term, average in row.earlier_averages:
        if average is None:
            missing.append(f"moyenne du {earlier_term.label}")
        averages[earlier_term.number - 1] = average
    if missing:
        return StudentReadiness(row.student, None, tuple(missing))
    assessment = row.assessment
    averages[term.number - 1] = assessment.average
    inputs = PromptInputs(
        subject_name=subject_name,
        trimester=term.number,
        averages=tuple(averages),
        behaviour=assessment.behaviour,
        participation=assessment.participation,
        work=assessment.work,
    )
    return StudentReadiness(row.student, inputs, ())


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
