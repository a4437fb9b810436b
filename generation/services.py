"""Writes for generation: create, run, cancel and retry jobs. Keyword-only, typed."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator, Sequence
from dataclasses import asdict

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from classes.models import Student, Teacher, TeachingAssignment, Term
from classes.services import ensure_term_open

from . import selectors
from .backends import BaseBackend, ModelLoadError, get_backend
from .drafting import DraftItem, draft_with_checks
from .models import Draft, GenerationJob, WorkerState
from .prompts import PROMPT_VERSION, build_messages

logger = logging.getLogger(__name__)

# A job whose task was delivered more often than this (a worker killed again and again on it)
# fails instead of looping: the teacher gets a retry button.
MAX_DELIVERIES = 3
GENERATION_FAILED_MESSAGE = (
    "La génération a échoué en cours de route. Les brouillons déjà rédigés sont conservés ;"
    " cliquez sur « Réessayer » pour terminer la classe."
)
TOO_MANY_DELIVERIES_MESSAGE = (
    "La génération a été interrompue plusieurs fois (le serveur de calcul s'est arrêté)."
    " Cliquez sur « Réessayer » ou prévenez l'administrateur."
)


class JobAlreadyActiveError(ValidationError):
    def __init__(self, job: GenerationJob) -> None:
        super().__init__(
            "Une génération est déjà en cours pour cette classe : attendez qu'elle se termine"
            " ou annulez-la.",
            code="job_active",
        )
        self.job = job


@transaction.atomic
def job_create(
    *,
    assignment: TeachingAssignment,
    term: Term,
    user: Teacher,
    students: Sequence[Student] | None = None,
) -> GenerationJob:
    """Create a job and one pending draft per ready student; enqueue after commit."""
    if assignment.teacher_id != user.pk:
        raise PermissionDenied("Only the assignment's teacher generates its drafts.")
    ensure_term_open(term)
    readiness = selectors.class_readiness(
        assignment=assignment, term=term, students=list(students) if students else None
    )
    ready = [r for r in readiness if r.is_ready]
    if not ready:
        raise ValidationError(
            "Aucun élève n'a toutes ses saisies (moyenne, comportement, participation, travail)"
            " : complétez le tableau avant de générer.",
            code="nothing_ready",
        )
    existing = selectors.active_job(assignment=assignment, term=term)
    if existing is not None:
        raise JobAlreadyActiveError(existing)
    try:
        with transaction.atomic():
            job = GenerationJob.objects.create(
                assignment=assignment,
                term=term,
                requested_by=user,
                seed=settings.APPRECIATION_SEED,
            )
    except IntegrityError:
        # Two clicks raced past the check: the constraint keeps one job.
        raise JobAlreadyActiveError(
            selectors.active_job(assignment=assignment, term=term)
        ) from None
    Draft.objects.bulk_create(
        Draft(
            job=job,
            student=r.student,
            subject_id=assignment.subject_id,
            term=term,
            prompt_messages=build_messages(r.inputs),
            prompt_version=PROMPT_VERSION,
        )
        for r in ready
    )
    from .tasks import generate_drafts

    generate_drafts.delay_on_commit(job.pk)
    logger.info("Job %s queued: %s drafts for assignment %s", job.pk, len(ready), assignment.pk)
    return job


@transaction.atomic
def job_cancel(*, job: GenerationJob, user: Teacher) -> GenerationJob:
    job = GenerationJob.objects.select_for_update().get(pk=job.pk)
    if not job.is_active:
        return job
    job.status = GenerationJob.Status.CANCELLED
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "finished_at"])
    job.drafts.filter(status=Draft.Status.PENDING).update(status=Draft.Status.CANCELLED)
    logger.info("Job %s cancelled by user %s", job.pk, user.pk)
    return job


@transaction.atomic
def job_retry(*, job: GenerationJob, user: Teacher) -> GenerationJob:
    """Queue a failed or cancelled job again; the drafts already written are kept."""
    job = GenerationJob.objects.select_for_update().get(pk=job.pk)
    if job.status not in (GenerationJob.Status.FAILED, GenerationJob.Status.CANCELLED):
        return job
    ensure_term_open(job.term)
    existing = selectors.active_job(assignment=job.assignment, term=job.term)
    if existing is not None:
        raise JobAlreadyActiveError(existing)
    job.drafts.filter(status__in=[Draft.Status.CANCELLED, Draft.Status.FAILED]).update(
        status=Draft.Status.PENDING
    )
    job.status = GenerationJob.Status.QUEUED
    job.error_message = job.error_detail = ""
    job.deliveries = 0
    job.finished_at = None
    job.save(
        update_fields=["status", "error_message", "error_detail", "deliveries", "finished_at"]
    )
    from .tasks import generate_drafts

    generate_drafts.delay_on_commit(job.pk)
    return job


def worker_state_set(*, hostname: str, state: str, backend: BaseBackend | None, detail: str = ""):
    info = {}
    if backend is not None:
        try:
            info = backend.model_info()
        except Exception:  # model_info must never hide the real state
            logger.exception("model_info() failed")
    WorkerState.objects.update_or_create(
        hostname=hostname or socket.gethostname(),
        defaults={"state": state, "model_info": info, "detail": detail},
    )


def _job_fail(job_id: int, *, message: str, detail: str) -> None:
    GenerationJob.objects.filter(pk=job_id, status__in=GenerationJob.ACTIVE_STATUSES).update(
        status=GenerationJob.Status.FAILED,
        error_message=message,
        error_detail=detail[:5000],
        finished_at=timezone.now(),
    )


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _claim(job_id: int, hostname: str) -> GenerationJob | None:
    """Mark the job running for this delivery; None when there is nothing to do."""
    with transaction.atomic():
        job = (
            GenerationJob.objects.select_for_update()
            .select_related("assignment__school_class__school", "assignment__subject", "term")
            .filter(pk=job_id)
            .first()
        )
        if job is None or not job.is_active:
            logger.info("Job %s: nothing to do (missing or %s)", job_id, job and job.status)
            return None
        job.deliveries += 1
        if job.deliveries > MAX_DELIVERIES:
            job.status = GenerationJob.Status.FAILED
            job.error_message = TOO_MANY_DELIVERIES_MESSAGE
            job.error_detail = f"Delivered {job.deliveries} times; giving up."
            job.finished_at = timezone.now()
            job.save()
            logger.error("Job %s delivered %s times: failed", job.pk, job.deliveries)
            return None
        job.status = GenerationJob.Status.RUNNING
        job.started_at = job.started_at or timezone.now()
        job.heartbeat_at = timezone.now()
        job.worker_hostname = hostname
        job.save()
        return job


def job_run(*, job_id: int, hostname: str = "", backend: BaseBackend | None = None) -> None:
    """Run a job on this worker: idempotent, resumable, cancellable between batches."""
    job = _claim(job_id, hostname)
    if job is None:
        return
    backend = backend or get_backend()
    if backend.status != "ready":
        worker_state_set(hostname=hostname, state=WorkerState.State.LOADING, backend=backend)
    try:
        backend.load()
    except ModelLoadError as exc:
        logger.error("Job %s: model load failed: %s", job.pk, exc)
        worker_state_set(
            hostname=hostname, state=WorkerState.State.FAILED, backend=backend, detail=str(exc)
        )
        _job_fail(job.pk, message=exc.user_message, detail=str(exc))
        return
    worker_state_set(hostname=hostname, state=WorkerState.State.READY, backend=backend)

    assignment = job.assignment
    names = selectors.class_student_names(assignment=assignment)
    banned = selectors.school_banned_phrases(school_id=assignment.school_class.school_id)
    max_chars = assignment.school_class.school.appreciation_max_chars
    pending = list(job.drafts.filter(status=Draft.Status.PENDING).order_by("pk"))
    info = backend.model_info()
    chunk_size = max(1, int(getattr(backend, "chunk_size", 0) or settings.APPRECIATION_BATCH_SIZE or 8))
    try:
        for index, chunk in enumerate(_chunks(pending, chunk_size)):
            status = GenerationJob.objects.values_list("status", flat=True).get(pk=job.pk)
            if status != GenerationJob.Status.RUNNING:
                logger.info("Job %s is %s: stopping", job.pk, status)
                return
            seed = None if job.seed is None else job.seed + index * 1000
            outcomes = draft_with_checks(
                backend=backend,
                items=[
                    DraftItem(
                        key=str(draft.pk),
                        messages=draft.prompt_messages,
                        forbidden_names=names,
                        banned_phrases=banned,
                        max_chars=max_chars,
                    )
                    for draft in chunk
                ],
                max_attempts=settings.APPRECIATION_MAX_ATTEMPTS,
                seed=seed,
            )
            now = timezone.now()
            with transaction.atomic():
                for outcome in outcomes:
                    # Conditional on PENDING: a redelivered task never rewrites a draft.
                    Draft.objects.filter(pk=int(outcome.key), status=Draft.Status.PENDING).update(
                        status=Draft.Status.GENERATED,
                        text=outcome.text,
                        raw_texts=list(outcome.raw_texts),
                        flags=[asdict(flag) for flag in outcome.flags],
                        attempts=outcome.attempts,
                        model_base=str(info.get("base_model", "")),
                        model_adapter=str(info.get("adapter", "")),
                        is_test_model=bool(info.get("test_model", False)),
                        generated_at=now,
                    )
                GenerationJob.objects.filter(pk=job.pk).update(heartbeat_at=now)
    except Exception as exc:
        logger.exception("Job %s failed during generation", job.pk)
        _job_fail(job.pk, message=GENERATION_FAILED_MESSAGE, detail=f"{type(exc).__name__}: {exc}")
        return
    GenerationJob.objects.filter(pk=job.pk, status=GenerationJob.Status.RUNNING).update(
        status=GenerationJob.Status.SUCCEEDED, finished_at=timezone.now()
    )
    logger.info("Job %s succeeded: %s drafts", job.pk, len(pending))
