"""The web side's job commands: create, cancel and retry a class's generation job.

The job is sent to the worker through `generation.queue` (by task name): the tasks import
the runner, never the reverse. Keyword-only, typed."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from classes.models import Student, Teacher, TeachingAssignment, Term
from classes.services import ensure_term_open

from .. import queue, selectors
from ..backends import (
    INFERENCE_SERVER_USER_MESSAGE,
    MODEL_MISSING_USER_MESSAGE,
)
from ..models import (
    Draft,
    FinalTexts,
    GenerationJob,
)
from ..prompts import PROMPT_VERSION, build_messages
from .runner import job_fail

logger = logging.getLogger(__name__)

logger = logging.getLogger(__name__)

# A task is sent per batch of about this many drafts, at most MAX_TASKS_PER_JOB per job.
TASK_BATCH_HINT = 8
MAX_TASKS_PER_JOB = 8


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
    finals: str = FinalTexts.SKIP,
) -> GenerationJob:
    """Create a job and one pending draft per ready student; enqueue after commit.

    A student whose text a human wrote (validated, approved or returned) gets a new draft
    offered beside that text, never in its place; a class run can leave them out instead
    (`finals=SKIP`). "Régénérer" on one student always offers.
    """
    if assignment.teacher_id != user.pk:
        raise PermissionDenied("Only the assignment's teacher generates its drafts.")
    if finals not in FinalTexts.values:
        raise ValidationError("Choix inconnu pour les appréciations déjà validées.")
    ensure_term_open(term)
    plan = selectors.generation_plan(
        assignment=assignment, term=term, students=list(students) if students else None
    )
    ready = plan.to_draft
    if students is None and finals == FinalTexts.SKIP:
        ready = [r for r in ready if r.student.pk not in plan.human_text_ids]
        if plan.ready and not ready:
            raise ValidationError(
                "Toutes les appréciations prêtes sont déjà validées ou renvoyées : rien n'est"
                " à rédiger. Choisissez « proposer un nouveau brouillon à côté » pour en"
                " obtenir un sans toucher à votre texte.",
                code="all_final",
            )
    if not ready:
        raise ValidationError(
            "Aucun élève n'a toutes ses saisies du trimestre (moyenne, comportement,"
            " participation, travail) : complétez le tableau avant de générer.",
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
    missing = selectors.model_missing_on_every_worker()
    if missing is not None:
        # The only worker(s) said at start that they have no model: fail now, not after a
        # load that would time out. The drafts stay pending for « Réessayer », which asks
        # the worker again (the model may have been installed since).
        # A worker in front of inference servers (worker.backends.openai) found none answering.
        served = bool(missing.model_info.get("servers"))
        job_fail(
            job.pk,
            message=INFERENCE_SERVER_USER_MESSAGE if served else MODEL_MISSING_USER_MESSAGE,
            detail=f"No generation worker has the model: {missing.hostname}: {missing.detail}",
        )
        logger.error("Job %s failed at once: no worker has the model", job.pk)
        job.refresh_from_db()
        return job
    _enqueue(job, draft_count=len(ready))
    logger.info("Job %s queued: %s drafts for assignment %s", job.pk, len(ready), assignment.pk)
    return job


def _enqueue(job: GenerationJob, *, draft_count: int) -> None:
    """Send one task per batch of drafts, after commit.

    Each task claims batches until none is left, so one GPU worker drafts the whole class and
    several share it; the surplus tasks find nothing to claim and end at once.
    """
    tasks = max(1, min(MAX_TASKS_PER_JOB, -(-draft_count // TASK_BATCH_HINT)))
    GenerationJob.objects.filter(pk=job.pk).update(
        tasks_sent=F("tasks_sent") + tasks, sent_at=timezone.now()
    )
    for _ in range(tasks):
        queue.send_job(job.pk)


@transaction.atomic
def job_cancel(*, job: GenerationJob, user: Teacher) -> GenerationJob:
    job = GenerationJob.objects.select_for_update().get(pk=job.pk)
    if not job.is_active:
        return job
    job.status = GenerationJob.Status.CANCELLED
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "finished_at"])
    # A batch already on a worker is thrown away when it comes back (_write_outcomes checks
    # the job under the same lock): no draft is written after the job says cancelled.
    job.drafts.filter(status__in=[Draft.Status.PENDING, Draft.Status.RUNNING]).update(
        status=Draft.Status.CANCELLED, claimed_by="", claimed_at=None
    )
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
    pending = job.drafts.filter(
        status__in=[Draft.Status.CANCELLED, Draft.Status.FAILED, Draft.Status.RUNNING]
    ).update(status=Draft.Status.PENDING, claimed_by="", claimed_at=None, claims=0)
    job.status = GenerationJob.Status.QUEUED
    job.error_message = job.error_detail = ""
    job.deliveries = job.tasks_sent = job.resends = 0
    job.progress_step = job.progress_steps = 0
    job.finished_at = None
    job.save()
    _enqueue(job, draft_count=pending or 1)
    return job
