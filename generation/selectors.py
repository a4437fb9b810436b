"""Reads for generation, scoped by the caller (views pass objects already scoped to the user)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Q

from classes.models import Student, TeachingAssignment, Term, TermAssessment
from classes.selectors import StudentRow, class_sheet

from .backends import MODEL_MISSING_USER_MESSAGE
from .models import (
    HUMAN_TEXT_STATUSES,
    Appreciation,
    BannedPhrase,
    Draft,
    Feedback,
    GenerationJob,
    ModelVersion,
    WorkerState,
)
from .prompts import PromptInputs, build_messages


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


def job_progress(*, job: GenerationJob) -> dict[str, int | float]:
    """Drafts written (done: generated or failed) of the total, and `value` for the bar: the
    drafts written plus the share of the batch on the worker decoded so far (a class is one
    batch, so the bar moves between two drafts)."""
    counts = job.drafts.aggregate(
        total=Count("pk"),
        done=Count("pk", filter=Q(status__in=[Draft.Status.GENERATED, Draft.Status.FAILED])),
        generated=Count("pk", filter=Q(status=Draft.Status.GENERATED)),
        running=Count("pk", filter=Q(status=Draft.Status.RUNNING)),
    )
    share = 0.0
    if job.status == GenerationJob.Status.RUNNING and job.progress_steps:
        share = min(job.progress_step, job.progress_steps) / job.progress_steps
    value = round(counts["done"] + counts["running"] * share, 2)
    counts["value"] = int(value) if value.is_integer() else value
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


@dataclass(frozen=True)
class GenerationPlan:
    """What a class generation would do, student by student: the confirmation's counts."""

    ready: list[StudentReadiness]
    not_ready: list[StudentReadiness]
    # Among the ready: a model draft awaiting review (replaced, the old one kept in history)
    replace_ids: frozenset[int]
    # ... and a text a human wrote (validated, approved, returned): offered beside, or skipped
    human_text_ids: frozenset[int]

    @property
    def to_draft(self) -> list[StudentReadiness]:
        return self.ready

    @property
    def new_count(self) -> int:
        return len(self.ready) - len(self.replace_ids) - len(self.human_text_ids)

    @property
    def replace_count(self) -> int:
        return len(self.replace_ids)

    @property
    def human_text_count(self) -> int:
        return len(self.human_text_ids)


def generation_plan(
    *, assignment: TeachingAssignment, term: Term, students: list[Student] | None = None
) -> GenerationPlan:
    readiness = class_readiness(assignment=assignment, term=term, students=students)
    ready_ids = [r.student.pk for r in readiness if r.is_ready]
    statuses = dict(
        Appreciation.objects.filter(
            student_id__in=ready_ids, subject_id=assignment.subject_id, term=term
        ).values_list("student_id", "status")
    )
    return _plan(readiness, statuses)


def generation_plan_of_rows(rows: list[ReviewRow]) -> GenerationPlan:
    """The same plan from review rows already read (the review page): no second read."""
    return _plan(
        [row.readiness for row in rows],
        {row.student.pk: row.appreciation.status for row in rows if row.appreciation},
    )


def _plan(readiness: list[StudentReadiness], statuses: dict[int, str]) -> GenerationPlan:
    ready = [r for r in readiness if r.is_ready]
    ready_ids = {r.student.pk for r in ready}
    return GenerationPlan(
        ready=ready,
        not_ready=[r for r in readiness if not r.is_ready],
        replace_ids=frozenset(
            pk
            for pk, status in statuses.items()
            if pk in ready_ids and status == Appreciation.Status.GENERATED
        ),
        human_text_ids=frozenset(
            pk
            for pk, status in statuses.items()
            if pk in ready_ids and status in HUMAN_TEXT_STATUSES
        ),
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


@dataclass(frozen=True)
class HistoryEntry:
    """A text this appreciation had: a human's validated text or a model's draft."""

    kind: str  # "human" or "model"
    text: str
    at: object  # datetime
    author: object = None  # the teacher, for a human text
    draft_id: int | None = None  # the draft, for a model text
    model_version: str = ""  # the name of the version that wrote it, for a model text


@dataclass
class ReviewRow:
    readiness: StudentReadiness
    row: StudentRow
    appreciation: Appreciation | None
    feedback: Feedback | None = None
    # Earlier drafts of this student, kept when a new one is asked for ("Régénérer").
    history: list[Draft] = field(default_factory=list)
    # Every earlier text, human or model, newest first, the current one left out.
    text_history: list[HistoryEntry] = field(default_factory=list)

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

    @property
    def offered_draft(self) -> Draft | None:
        return self.appreciation.offered_draft if self.appreciation else None

    @property
    def stale_draft(self) -> bool:
        """The draft awaiting the teacher's decision (the text under review, or the one offered
        beside a human's text) was prompted with inputs changed since: it may describe
        another average or other ratings."""
        if self.appreciation is None or not self.readiness.is_ready:
            return False
        draft = self.offered_draft if self.appreciation.is_human_text else self.draft
        if draft is None or not draft.prompt_messages:
            return False
        return draft.prompt_messages != build_messages(self.readiness.inputs)

    @property
    def shown_flags(self) -> list[dict]:
        """The draft's flags while the text is the draft's: never over a teacher's own text."""
        if not self.draft or self.appreciation.is_human_text or self.text != self.draft.text:
            return []
        return self.draft.flags


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
        ).select_related(
            "draft__model_version",
            "offered_draft__model_version",
            "validated_by",
            "returned_by",
            "approved_by",
        )
    }
    feedback: dict[int, Feedback] = {}
    human_texts: dict[int, list[HistoryEntry]] = {}
    for item in (
        Feedback.objects.filter(appreciation__in=[a.pk for a in appreciations.values()])
        .select_related("validated_by")
        .order_by("validated_at")
    ):
        feedback[item.appreciation_id] = item
        human_texts.setdefault(item.appreciation_id, []).append(
            HistoryEntry("human", item.final_text, item.validated_at, author=item.validated_by)
        )
    history: dict[int, list[Draft]] = {}
    for draft in (
        Draft.objects.filter(
            student_id__in=student_ids,
            subject_id=assignment.subject_id,
            term=term,
            status=Draft.Status.GENERATED,
        )
        .select_related("model_version")
        .order_by("-generated_at")
    ):
        history.setdefault(draft.student_id, []).append(draft)
    result = []
    for row in rows:
        appreciation = appreciations.get(row.student.pk)
        shown = {appreciation.draft_id, appreciation.offered_draft_id} if appreciation else set()
        drafts = [d for d in history.get(row.student.pk, []) if d.pk not in shown]
        current_text = appreciation.text if appreciation else ""
        entries = [
            entry
            for entry in (human_texts.get(appreciation.pk, []) if appreciation else [])
            if entry.text != current_text
        ]
        entries += [
            HistoryEntry(
                "model",
                d.text,
                d.generated_at,
                draft_id=d.pk,
                model_version=d.model_version.name if d.model_version else "",
            )
            for d in drafts
        ]
        entries.sort(key=lambda entry: entry.at, reverse=True)
        result.append(
            ReviewRow(
                readiness=prompt_inputs_for_row(
                    row=row, subject_name=assignment.subject.name, term=term
                ),
                row=row,
                appreciation=appreciation,
                feedback=feedback.get(appreciation.pk) if appreciation else None,
                history=drafts,
                text_history=_unique_texts(entries),
            )
        )
    return result


def active_model_version() -> ModelVersion | None:
    """The version in service, read only (pages: GET writes nothing). None before a worker's
    first job created it from the settings (generation.services.versions)."""
    return ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).first()


def model_versions_shown() -> bool:
    """Whether pages say which model version wrote a draft: not while a share of the drafts
    comes, blind, from a candidate (APPRECIATION_CANDIDATE_SHARE), since a label on some rows
    only would tell the teacher which ones."""
    return float(getattr(settings, "APPRECIATION_CANDIDATE_SHARE", 0.0)) <= 0


def _unique_texts(entries: list[HistoryEntry]) -> list[HistoryEntry]:
    """Each text once (a text validated twice is one entry), newest first."""
    seen: set[str] = set()
    unique = []
    for entry in entries:
        if entry.text not in seen:
            seen.add(entry.text)
            unique.append(entry)
    return unique


@dataclass(frozen=True)
class ReturnedSummary:
    assignment: TeachingAssignment
    term: Term
    count: int


def returned_to_teacher(*, user, term: Term) -> list[ReturnedSummary]:
    """The teacher's classes with appréciations a department head returned, this term."""
    assignments = list(
        TeachingAssignment.objects.filter(
            teacher=user, school_class__school_year_id=term.school_year_id
        ).select_related("school_class", "subject")
    )
    if not assignments:
        return []
    counts = {
        (c["student__school_class_id"], c["subject_id"]): c["count"]
        for c in Appreciation.objects.filter(
            term=term,
            status=Appreciation.Status.RETURNED,
            student__school_class_id__in={a.school_class_id for a in assignments},
            subject_id__in={a.subject_id for a in assignments},
        )
        .values("student__school_class_id", "subject_id")
        .annotate(count=Count("pk"))
    }
    return [
        ReturnedSummary(a, term, counts[(a.school_class_id, a.subject_id)])
        for a in assignments
        if counts.get((a.school_class_id, a.subject_id))
    ]


def validated_count(*, school_class_id: int, subject_id: int, term: Term) -> int:
    """Validated and not yet approved: what « Tout approuver » would approve."""
    return Appreciation.objects.filter(
        student__school_class_id=school_class_id,
        subject_id=subject_id,
        term=term,
        status=Appreciation.Status.VALIDATED,
    ).count()


def final_count(*, assignment: TeachingAssignment, term: Term) -> int:
    """Validated or approved appréciations of the class in the subject: the page's counter."""
    return Appreciation.objects.filter(
        student__school_class_id=assignment.school_class_id,
        subject_id=assignment.subject_id,
        term=term,
        status__in=[Appreciation.Status.VALIDATED, Appreciation.Status.APPROVED],
    ).count()


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
