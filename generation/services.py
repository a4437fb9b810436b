"""Writes for generation: create, run, cancel and retry jobs. Keyword-only, typed."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from rapidfuzz.distance import Levenshtein

from classes.models import Student, Teacher, TeachingAssignment, Term
from classes.services import ensure_term_open
from classes.text import strip_invisible

from . import selectors
from .backends import (
    MODEL_MISSING_USER_MESSAGE,
    BaseBackend,
    ModelAvailability,
    ModelLoadError,
    get_backend,
)
from .checks import CheckFlag, check_text, collapse_spaces
from .drafting import DraftItem, draft_with_checks
from .models import (
    Appreciation,
    Draft,
    Feedback,
    FinalTexts,
    GenerationJob,
    QuickDraft,
    WorkerState,
)
from .prompts import PROMPT_VERSION, PromptInputs, build_messages

logger = logging.getLogger(__name__)

# A task is sent per batch of about this many drafts, at most MAX_TASKS_PER_JOB per job.
TASK_BATCH_HINT = 8
MAX_TASKS_PER_JOB = 8
# Deliveries beyond the tasks sent (workers killed again and again) fail the job instead of
# looping; a draft claimed this many times fails alone. The teacher gets "Réessayer".
MAX_REDELIVERIES = 3
MAX_CLAIMS = 3
# The periodic recovery sends a stalled job again; the resends made while no worker showed
# any life are counted (a written draft resets the count), and beyond this the job fails.
MAX_RESENDS = 5
# A lost or broken database connection: reconnect and retry the step (see _db_step).
DB_ERRORS = (OperationalError, InterfaceError)
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
        _job_fail(
            job.pk,
            message=MODEL_MISSING_USER_MESSAGE,
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
    from .tasks import generate_drafts

    tasks = max(1, min(MAX_TASKS_PER_JOB, -(-draft_count // TASK_BATCH_HINT)))
    GenerationJob.objects.filter(pk=job.pk).update(
        tasks_sent=F("tasks_sent") + tasks, sent_at=timezone.now()
    )
    for _ in range(tasks):
        generate_drafts.delay_on_commit(job.pk)


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
    job.finished_at = None
    job.save()
    _enqueue(job, draft_count=pending or 1)
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


def worker_check_model(*, hostname: str, backend: BaseBackend | None = None) -> ModelAvailability:
    """At worker start: are the model's files on this machine? Nothing is loaded (that would
    take minutes); the answer is recorded as the worker's state (idle or model missing)."""
    hostname = hostname or socket.gethostname()
    try:
        backend = backend or get_backend()
    except Exception:
        # The check must never stop a worker: the load, later, says what is wrong.
        logger.exception("Worker %s: no backend to check the model with", hostname)
        worker_state_set(hostname=hostname, state=WorkerState.State.IDLE, backend=None)
        return ModelAvailability(available=True)
    availability = _check_available(backend)
    _record_availability(hostname=hostname, backend=backend, availability=availability)
    return availability


def _check_available(backend: BaseBackend) -> ModelAvailability:
    """The backend's check; one that breaks says "available" and lets the load tell."""
    try:
        return backend.check_available()
    except Exception:
        logger.exception("The model check failed: the load will tell")
        return ModelAvailability(available=True)


def _record_availability(
    *, hostname: str, backend: BaseBackend, availability: ModelAvailability
) -> None:
    if availability.available:
        logger.info("Worker %s: model present (checked in %.3f s)", hostname, availability.seconds)
        if backend.status != "ready":
            worker_state_set(hostname=hostname, state=WorkerState.State.IDLE, backend=backend)
        return
    logger.error(
        "Worker %s: model missing (checked in %.3f s): %s. Install it with"
        " `python manage.py fetch_model`, or run the offline test model"
        " (APPRECIATION_TEST_MODEL=1).",
        hostname,
        availability.seconds,
        availability.detail,
    )
    worker_state_set(
        hostname=hostname,
        state=WorkerState.State.MISSING,
        backend=backend,
        detail=availability.detail,
    )


def _job_fail(job_id: int, *, message: str, detail: str) -> None:
    GenerationJob.objects.filter(pk=job_id, status__in=GenerationJob.ACTIVE_STATUSES).update(
        status=GenerationJob.Status.FAILED,
        error_message=message,
        error_detail=detail[:5000],
        finished_at=timezone.now(),
    )
    # Nothing is lost: unfinished drafts wait for "Réessayer".
    Draft.objects.filter(job_id=job_id, status=Draft.Status.RUNNING).update(
        status=Draft.Status.PENDING, claimed_by="", claimed_at=None
    )


def _start_delivery(job_id: int, hostname: str) -> GenerationJob | None:
    """Count this delivery and mark the job running; None when there is nothing to do."""
    with transaction.atomic():
        job = (
            GenerationJob.objects.select_for_update()
            .select_related("assignment__school_class__school", "assignment__subject", "term")
            .filter(pk=job_id)
            .first()
        )
        if job is None or not job.is_active:
            logger.info("Job %s: nothing to do (%s)", job_id, job.status if job else "missing")
            return None
        job.deliveries += 1
        if job.deliveries > job.tasks_sent + MAX_REDELIVERIES:
            job.status = GenerationJob.Status.FAILED
            job.error_message = TOO_MANY_DELIVERIES_MESSAGE
            job.error_detail = f"{job.deliveries} deliveries for {job.tasks_sent} tasks."
            job.finished_at = timezone.now()
            job.save()
            logger.error("Job %s: %s", job.pk, job.error_detail)
            return None
        job.status = GenerationJob.Status.RUNNING
        job.started_at = job.started_at or timezone.now()
        job.heartbeat_at = timezone.now()
        job.worker_hostname = hostname
        job.save()
        return job


def _claim_batch(*, job: GenerationJob, hostname: str, size: int) -> list[Draft]:
    """Take up to `size` drafts of the job for this worker.

    Pending drafts, and running ones whose lease expired or that this very worker held before
    it restarted (a solo-pool worker runs one task at a time: anything it still holds is an
    orphan). A draft claimed MAX_CLAIMS times (its worker keeps dying on it) fails instead.
    """
    now = timezone.now()
    lease_start = now - timedelta(seconds=settings.APPRECIATION_LEASE_SECONDS)
    with transaction.atomic():
        candidates = list(
            Draft.objects.select_for_update(skip_locked=True)
            .filter(job=job)
            .filter(
                Q(status=Draft.Status.PENDING)
                | Q(status=Draft.Status.RUNNING, claimed_at__lt=lease_start)
                | Q(status=Draft.Status.RUNNING, claimed_by=hostname)
            )
            .order_by("pk")[:size]
        )
        poisoned = [d.pk for d in candidates if d.claims >= MAX_CLAIMS]
        if poisoned:
            Draft.objects.filter(pk__in=poisoned).update(status=Draft.Status.FAILED)
            logger.error("Job %s: drafts %s failed after %s claims", job.pk, poisoned, MAX_CLAIMS)
        claimed = [d for d in candidates if d.pk not in poisoned]
        Draft.objects.filter(pk__in=[d.pk for d in claimed]).update(
            status=Draft.Status.RUNNING, claimed_by=hostname, claimed_at=now, claims=F("claims") + 1
        )
        GenerationJob.objects.filter(pk=job.pk).update(heartbeat_at=now)
    return claimed


def _finish_if_done(job_id: int) -> None:
    """The worker that writes the last draft closes the job."""
    with transaction.atomic():
        job = GenerationJob.objects.select_for_update().get(pk=job_id)
        if job.status != GenerationJob.Status.RUNNING:
            return
        drafts = job.drafts
        if drafts.filter(status__in=[Draft.Status.PENDING, Draft.Status.RUNNING]).exists():
            return
        failed = drafts.filter(status=Draft.Status.FAILED).count()
        job.finished_at = timezone.now()
        if failed:
            job.status = GenerationJob.Status.FAILED
            job.error_message = (
                f"{failed} brouillon(s) n'ont pas pu être rédigés (le serveur de calcul s'est"
                " arrêté plusieurs fois dessus). Les autres sont conservés ; cliquez sur"
                " « Réessayer »."
            )
            job.error_detail = f"{failed} drafts failed after {MAX_CLAIMS} claims."
        else:
            job.status = GenerationJob.Status.SUCCEEDED
        job.save()
        logger.info("Job %s %s", job.pk, job.status)


_CONTROL_CHARACTERS = dict.fromkeys(c for c in range(32) if chr(c) not in "\n\t")


def storable(text: str) -> str:
    """A model's output without control characters: PostgreSQL refuses NUL in text, and
    nothing else of them belongs in an appréciation."""
    return text.translate(_CONTROL_CHARACTERS)


def _write_outcomes(*, job_id: int, outcomes, info: dict) -> int:
    """Store a batch's drafts, unless the job stopped meanwhile; returns how many were written."""
    now = timezone.now()
    with transaction.atomic():
        # The job's row lock orders this write after a cancel (job_cancel takes it too).
        status = (
            GenerationJob.objects.select_for_update()
            .values_list("status", flat=True)
            .get(pk=job_id)
        )
        if status != GenerationJob.Status.RUNNING:
            logger.info("Job %s is %s: a finished batch is not written", job_id, status)
            return 0
        written = []
        for outcome in outcomes:
            # Conditional on RUNNING: a draft is written once, by the first worker to finish.
            if Draft.objects.filter(pk=int(outcome.key), status=Draft.Status.RUNNING).update(
                status=Draft.Status.GENERATED,
                text=storable(outcome.text),
                raw_texts=[storable(raw) for raw in outcome.raw_texts],
                flags=[asdict(flag) for flag in outcome.flags],
                attempts=outcome.attempts,
                model_base=str(info.get("base_model", "")),
                model_adapter=str(info.get("adapter", "")),
                is_test_model=bool(info.get("test_model", False)),
                generated_at=now,
            ):
                written.append(int(outcome.key))
        for draft in Draft.objects.filter(pk__in=written):
            appreciation_propose(draft=draft)
        if written:
            # Progress: the recovery's count of fruitless resends starts again.
            GenerationJob.objects.filter(pk=job_id).update(heartbeat_at=now, resends=0)
    return len(written)


def _db_step(step: Callable, *args, **kwargs):
    """Run one database step of a worker; a lost connection is closed and the step retried.

    PostgreSQL restarted, a connection ended by pg_terminate_backend, a network blink: the
    step starts again on a new connection after 0.5, 1, 2, 4… s (at most 10 s apart), for up
    to APPRECIATION_DB_RETRY_SECONDS, then the error goes up. Every step is idempotent (a
    claim takes back what this worker holds, a draft is written only while it is running).
    Inside a transaction nothing can be retried: the error goes up at once.
    """
    deadline = time.monotonic() + settings.APPRECIATION_DB_RETRY_SECONDS
    delay = 0.5
    while True:
        try:
            return step(*args, **kwargs)
        except DB_ERRORS as exc:
            if connection.in_atomic_block or time.monotonic() + delay > deadline:
                raise
            logger.warning(
                "Database step %s failed (%s: %s); reconnecting in %.1f s",
                getattr(step, "__name__", step),
                type(exc).__name__,
                str(exc).strip()[:200],
                delay,
            )
            _close_connection()
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def _close_connection() -> None:
    try:
        connection.close()
    except Exception:  # a dead connection may fail to close; it is dropped all the same
        logger.debug("Closing a broken connection failed", exc_info=True)


def lease_renew(*, job_id: int, hostname: str) -> int:
    """A live worker's heartbeat: its claims on the job's drafts and the job's sign of life
    are renewed (claims another worker took over stay that worker's). Returns the claims."""
    now = timezone.now()
    renewed = Draft.objects.filter(
        job_id=job_id, status=Draft.Status.RUNNING, claimed_by=hostname
    ).update(claimed_at=now)
    GenerationJob.objects.filter(pk=job_id, status=GenerationJob.Status.RUNNING).update(
        heartbeat_at=now
    )
    return renewed


class _LeaseKeeper:
    """Renews the worker's lease every quarter of APPRECIATION_LEASE_SECONDS in a thread of its
    own (with its own connection) while the worker loads the model and generates: a slow
    batch keeps its drafts, a dead worker's expire, a stuck one's after CELERY_TASK_TIME_LIMIT."""

    def __init__(self, *, job_id: int, hostname: str) -> None:
        self.job_id = job_id
        self.hostname = hostname
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-job-{job_id}", daemon=True)

    def __enter__(self) -> _LeaseKeeper:
        # Run inside a transaction (tests only) the thread would not see the job.
        if not connection.in_atomic_block:
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        from django.db import connections

        interval = max(0.2, settings.APPRECIATION_LEASE_SECONDS / 4)
        # A worker stuck past the task time limit (a hung generation: the solo pool enforces
        # no time limit) stops renewing, and its drafts go to the others.
        give_up = time.monotonic() + settings.CELERY_TASK_TIME_LIMIT
        try:
            while not self._stop.wait(interval) and time.monotonic() < give_up:
                try:
                    lease_renew(job_id=self.job_id, hostname=self.hostname)
                except Exception as exc:  # the database blinked: next beat, new connection
                    logger.warning("Job %s: lease not renewed (%s)", self.job_id, exc)
                    _close_connection()
        finally:
            connections.close_all()


def job_run(*, job_id: int, hostname: str = "", backend: BaseBackend | None = None) -> None:
    """Run (a share of) a job on this worker: idempotent, resumable, cancellable.

    A database that stays out of reach beyond the retries fails nothing: the job is not at
    fault. This worker's claims expire and the periodic recovery sends the job again.
    """
    hostname = hostname or socket.gethostname()
    try:
        job = _db_step(_start_delivery, job_id, hostname)
        if job is None:
            return
        with _LeaseKeeper(job_id=job.pk, hostname=hostname):
            _job_run(job=job, hostname=hostname, backend=backend)
    except DB_ERRORS as exc:
        logger.error(
            "Job %s: database out of reach (%s); left to the periodic recovery", job_id, exc
        )
        _close_connection()


def _job_run(*, job: GenerationJob, hostname: str, backend: BaseBackend | None) -> None:
    backend = backend or get_backend()
    if backend.status != "ready":
        # Seconds, not the minutes of a load that cannot succeed; and the model may have been
        # installed since the worker started.
        availability = _check_available(backend)
        if not availability.available:
            _db_step(
                _record_availability, hostname=hostname, backend=backend, availability=availability
            )
            _db_step(
                _job_fail, job.pk, message=MODEL_MISSING_USER_MESSAGE, detail=availability.detail
            )
            return
        _db_step(
            worker_state_set, hostname=hostname, state=WorkerState.State.LOADING, backend=backend
        )
    try:
        backend.load()
    except ModelLoadError as exc:
        logger.error("Job %s: model load failed: %s", job.pk, exc)
        _db_step(
            worker_state_set,
            hostname=hostname,
            state=WorkerState.State.FAILED,
            backend=backend,
            detail=str(exc),
        )
        _db_step(_job_fail, job.pk, message=exc.user_message, detail=str(exc))
        return
    _db_step(worker_state_set, hostname=hostname, state=WorkerState.State.READY, backend=backend)

    assignment = job.assignment
    names, banned = _db_step(_job_word_lists, assignment)
    max_chars = assignment.school_class.school.appreciation_max_chars
    typographic_spaces = assignment.school_class.school.typographic_spaces
    info = backend.model_info()
    size = settings.APPRECIATION_BATCH_SIZE or _backend_batch_size(backend)
    batch_index = 0
    try:
        while True:
            status = _db_step(_job_status, job.pk)
            if status != GenerationJob.Status.RUNNING:
                logger.info("Job %s is %s: stopping", job.pk, status)
                return
            batch = _db_step(_claim_batch, job=job, hostname=hostname, size=size)
            if not batch:
                break
            seed = None if job.seed is None else job.seed + batch[0].pk * 1000
            outcomes = draft_with_checks(
                backend=backend,
                items=[
                    DraftItem(
                        key=str(draft.pk),
                        messages=draft.prompt_messages,
                        forbidden_names=names,
                        banned_phrases=banned,
                        max_chars=max_chars,
                        typographic_spaces=typographic_spaces,
                    )
                    for draft in batch
                ],
                max_attempts=settings.APPRECIATION_MAX_ATTEMPTS,
                seed=seed,
            )
            _db_step(_write_outcomes, job_id=job.pk, outcomes=outcomes, info=info)
            batch_index += 1
    except DB_ERRORS:
        raise  # not the job's fault: job_run leaves it to the recovery
    except Exception as exc:
        logger.exception("Job %s failed during generation", job.pk)
        _db_step(
            _job_fail,
            job.pk,
            message=GENERATION_FAILED_MESSAGE,
            detail=f"{type(exc).__name__}: {exc}",
        )
        return
    _db_step(_finish_if_done, job.pk)
    logger.info("Job %s: this worker drafted %s batch(es)", job.pk, batch_index)


def _job_status(job_id: int) -> str:
    return GenerationJob.objects.values_list("status", flat=True).get(pk=job_id)


def _job_word_lists(assignment: TeachingAssignment) -> tuple[list[str], list[str]]:
    return (
        selectors.class_student_names(assignment=assignment),
        selectors.school_banned_phrases(school_id=assignment.school_class.school_id),
    )


def _backend_batch_size(backend: BaseBackend) -> int:
    size_for = getattr(backend, "batch_size", None)
    # A typical prompt is about 250 tokens (system + user, Llama 3 template).
    return max(1, int(size_for(prompt_tokens=300))) if callable(size_for) else 8


def jobs_recover_stalled() -> int:
    """The periodic recovery (Celery beat, every APPRECIATION_RECOVERY_INTERVAL seconds):
    send again every active job that waits on a worker gone or a task lost.

    The database is the source of truth: a job still queued or running with claims whose
    lease expired (their worker died, whatever its name), or with no sign of life for
    APPRECIATION_STALL_SECONDS (its task lost: a worker killed between two batches, a Redis
    restart that lost the queue), gets a new task; any live worker takes it and the expired
    claims over. Returns how many jobs were sent again.
    """
    now = timezone.now()
    job_ids = list(
        GenerationJob.objects.filter(status__in=GenerationJob.ACTIVE_STATUSES)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return sum(job_recover(job_id=job_id, now=now) for job_id in job_ids)


@transaction.atomic
def job_recover(*, job_id: int, now=None) -> bool:
    """Send one job again if it is stalled (see jobs_recover_stalled); True when sent.

    Bounded: a resend made while no worker showed any life counts, a written draft resets
    the count, and beyond MAX_RESENDS the job fails with the message that offers
    « Réessayer ». Resends while other jobs progress are free (the queue is just long).
    """
    now = now or timezone.now()
    job = (
        GenerationJob.objects.select_for_update(skip_locked=True)  # a worker writing: next tick
        .filter(pk=job_id, status__in=GenerationJob.ACTIVE_STATUSES)
        .first()
    )
    if job is None:
        return False
    lease_cutoff = now - timedelta(seconds=settings.APPRECIATION_LEASE_SECONDS)
    stall_cutoff = now - timedelta(seconds=settings.APPRECIATION_STALL_SECONDS)
    sent_at = job.sent_at or job.created_at
    last_sign = max(sent_at, job.heartbeat_at or sent_at)
    expired = (
        sent_at < lease_cutoff
        and job.drafts.filter(status=Draft.Status.RUNNING, claimed_at__lt=lease_cutoff).exists()
    )
    if not expired and last_sign >= stall_cutoff:
        return False
    reason = "claims expired" if expired else f"no sign of life since {last_sign.isoformat()}"
    workers_alive = (
        GenerationJob.objects.exclude(pk=job.pk).filter(heartbeat_at__gte=stall_cutoff).exists()
    )
    if not workers_alive:
        job.resends += 1
    if job.resends > MAX_RESENDS:
        job.status = GenerationJob.Status.FAILED
        job.error_message = TOO_MANY_DELIVERIES_MESSAGE
        job.error_detail = f"Sent again {MAX_RESENDS} times without progress ({reason})."
        job.finished_at = now
        job.save()
        # Nothing is lost: unfinished drafts wait for "Réessayer".
        job.drafts.filter(status=Draft.Status.RUNNING).update(
            status=Draft.Status.PENDING, claimed_by="", claimed_at=None
        )
        logger.error("Job %s failed: %s", job.pk, job.error_detail)
        return False
    job.tasks_sent += 1  # the redelivery guard of _start_delivery counts it
    job.sent_at = now
    job.save(update_fields=["tasks_sent", "sent_at", "resends"])
    from .tasks import generate_drafts

    generate_drafts.delay_on_commit(job.pk)
    logger.warning("Job %s sent again (%s; resend %s)", job.pk, reason, job.resends)
    return True


def worker_recover(*, hostname: str) -> int:
    """At worker start: release what this worker held when it died and send its jobs again.

    A worker killed between two batches holds no draft, yet its job still waits on it: the
    active jobs it last took a delivery of are sent again too (an extra task is harmless,
    claims are idempotent).
    """
    held = Draft.objects.filter(status=Draft.Status.RUNNING, claimed_by=hostname)
    job_ids = set(held.values_list("job_id", flat=True))
    held.update(status=Draft.Status.PENDING, claimed_by="", claimed_at=None)
    job_ids |= set(
        GenerationJob.objects.filter(
            worker_hostname=hostname, status=GenerationJob.Status.RUNNING
        ).values_list("pk", flat=True)
    )
    from .tasks import generate_drafts

    for job in GenerationJob.objects.filter(
        pk__in=job_ids, status__in=GenerationJob.ACTIVE_STATUSES
    ):
        GenerationJob.objects.filter(pk=job.pk).update(tasks_sent=F("tasks_sent") + 1)
        generate_drafts.delay(job.pk)
        logger.warning("Worker %s restarted: job %s sent again", hostname, job.pk)
    return len(job_ids)


# --- Review -------------------------------------------------------------------------------

MAX_REVIEW_SECONDS = 3600  # longer means the page was left open: not time spent reviewing


class ConflictError(ValidationError):
    """Someone saved the appreciation since this user loaded it."""

    def __init__(self, appreciation: Appreciation) -> None:
        who = appreciation.validated_by or appreciation.returned_by or appreciation.approved_by
        super().__init__(
            "Cette appréciation a été modifiée entre-temps"
            + (f" par {who}" if who else "")
            + " : voici le texte actuel. Relisez-le puis validez à nouveau.",
            code="conflict",
        )
        self.appreciation = appreciation


@transaction.atomic
def appreciation_propose(*, draft: Draft) -> Appreciation:
    """A generated draft reaches its student's appreciation.

    It becomes the text only while the text is the model's own (no appreciation yet, or one
    awaiting review; the earlier draft stays in the history). A text a human wrote
    (validated, approved, returned) is never replaced: the draft is offered beside it.
    """
    appreciation, created = Appreciation.objects.select_for_update().get_or_create(
        student_id=draft.student_id,
        subject_id=draft.subject_id,
        term_id=draft.term_id,
        defaults={"draft": draft, "text": draft.text},
    )
    if created or draft.pk in (appreciation.draft_id, appreciation.offered_draft_id):
        return appreciation
    if appreciation.is_human_text:
        appreciation.offered_draft = draft
        # The text did not change: the version stays, so nobody's save is refused for it.
        appreciation.save(update_fields=["offered_draft", "updated_at"])
        return appreciation
    appreciation.draft = draft
    appreciation.text = draft.text
    appreciation.version += 1
    appreciation.save()
    return appreciation


@transaction.atomic
def appreciation_dismiss_offer(*, appreciation: Appreciation, user: Teacher) -> Appreciation:
    """The teacher keeps their text and sets the offered draft aside (it stays in history)."""
    appreciation = Appreciation.objects.select_for_update().get(pk=appreciation.pk)
    _ensure_teacher_of(appreciation=appreciation, user=user)
    if appreciation.offered_draft_id is not None:
        appreciation.offered_draft = None
        appreciation.save(update_fields=["offered_draft", "updated_at"])
        logger.info("Appreciation %s: offered draft set aside by user %s", appreciation.pk, user.pk)
    return appreciation


def _ensure_teacher_of(*, appreciation: Appreciation, user: Teacher) -> None:
    if not TeachingAssignment.objects.filter(
        teacher=user,
        school_class_id=appreciation.student.school_class_id,
        subject_id=appreciation.subject_id,
    ).exists():
        raise PermissionDenied("Only the class's teacher in this subject decides.")
    ensure_term_open(appreciation.term)


def _check_version(appreciation: Appreciation | None, version: int) -> None:
    current = appreciation.version if appreciation else 0
    if current != version:
        raise ConflictError(appreciation)


class NeedsConfirmationError(ValidationError):
    """The text a teacher validates fails a check: they confirm, knowing which."""

    def __init__(self, flags: Sequence[CheckFlag]) -> None:
        super().__init__(
            "À vérifier avant de valider : " + " ".join(flag.message for flag in flags),
            code="needs_confirmation",
        )
        self.flags = list(flags)


def _clean_final_text(text: str, *, max_chars: int) -> str:
    # The import's cleaning: invisible characters (U+202E, zero-width, BOM) typed or pasted
    # into the form would otherwise reach Gepi, the spreadsheets and the printed page.
    # One line; the no-break spaces a teacher (or a suggestion) put before « ; : ! ? » stay.
    text = collapse_spaces(strip_invisible(text or ""))
    if not text:
        raise ValidationError("L'appréciation est vide : écrivez un texte avant de valider.")
    if len(text) > 2000:
        raise ValidationError("L'appréciation est trop longue (2 000 caractères au plus).")
    if len(text) > max_chars:
        # Pronote and the report card cut what exceeds the school's limit: never validate it.
        raise ValidationError(
            f"L'appréciation compte {len(text)} caractères : la limite du bulletin fixée par"
            f" l'établissement est de {max_chars}. Raccourcissez-la avant de valider.",
            code="too_long_for_report_card",
        )
    return text


def _chosen_draft(*, appreciation: Appreciation | None, draft_id: int | None) -> Draft | None:
    """The draft the validated text comes from: the offered one, an earlier one, or the
    current one by default."""
    current = appreciation.draft if appreciation else None
    if draft_id is None or appreciation is None or draft_id == appreciation.draft_id:
        return current
    return (
        Draft.objects.filter(
            pk=draft_id,
            student_id=appreciation.student_id,
            subject_id=appreciation.subject_id,
            term_id=appreciation.term_id,
            status=Draft.Status.GENERATED,
        ).first()
        or current
    )


@transaction.atomic
def draft_validate(
    *,
    assignment: TeachingAssignment,
    term: Term,
    student: Student,
    user: Teacher,
    text: str,
    version: int,
    seconds_spent: int | None = None,
    draft_id: int | None = None,
    confirmed: bool = False,
) -> Appreciation:
    """The teacher validates a student's appréciation: the draft as is, edited, or their own.

    Raises ConflictError when someone else saved it since `version` was read, and
    NeedsConfirmationError when the text fails a check and the teacher has not confirmed.
    `draft_id` names the draft the text was taken from (an offered or earlier draft).
    Records the feedback (draft against final text) for the next adapter.
    """
    if assignment.teacher_id != user.pk or student.school_class_id != assignment.school_class_id:
        raise PermissionDenied("Only the assignment's teacher validates its appreciations.")
    ensure_term_open(term)
    school = assignment.school_class.school
    final_text = _clean_final_text(text, max_chars=school.appreciation_max_chars)
    appreciation = (
        # of=self: PostgreSQL cannot lock the nullable side of the join to the draft.
        Appreciation.objects.select_for_update(of=("self",))
        .select_related("draft")
        .filter(student=student, subject_id=assignment.subject_id, term=term)
        .first()
    )
    _check_version(appreciation, version)
    if not confirmed:
        flags = check_text(
            final_text,
            forbidden_names=selectors.class_student_names(assignment=assignment),
            banned_phrases=selectors.school_banned_phrases(school_id=school.pk),
            typographic_spaces=school.typographic_spaces,
        )
        if flags:
            raise NeedsConfirmationError(flags)
    draft = _chosen_draft(appreciation=appreciation, draft_id=draft_id)
    if appreciation is None:
        appreciation = Appreciation(student=student, subject_id=assignment.subject_id, term=term)
    now = timezone.now()
    appreciation.text = final_text
    appreciation.draft = draft
    if draft is not None and draft.pk == appreciation.offered_draft_id:
        appreciation.offered_draft = None  # the teacher chose it
    appreciation.status = Appreciation.Status.VALIDATED
    appreciation.validated_by = user
    appreciation.validated_at = now
    appreciation.approved_by = None
    appreciation.approved_at = None
    appreciation.version += 0 if appreciation.pk is None else 1
    appreciation.save()
    draft_text = draft.text if draft else ""
    readiness = selectors.class_readiness(assignment=assignment, term=term, students=[student])[0]
    Feedback.objects.create(
        appreciation=appreciation,
        draft=draft,
        school_id=school.pk,
        validated_by=user,
        draft_text=draft_text,
        final_text=final_text,
        edited=draft is None or final_text != draft_text,
        edit_distance=Levenshtein.distance(draft_text, final_text),
        seconds_spent=(
            None if seconds_spent is None else max(0, min(int(seconds_spent), MAX_REVIEW_SECONDS))
        ),
        flags=draft.flags if draft else [],
        prompt_messages=draft.prompt_messages if draft else [],
        prompt_version=draft.prompt_version if draft else "",
        model_base=draft.model_base if draft else "",
        model_adapter=draft.model_adapter if draft else "",
        inputs=selectors.dataset_inputs(
            student=student, assignment=assignment, term=term, readiness=readiness
        ),
    )
    logger.info("Appreciation %s validated by user %s", appreciation.pk, user.pk)
    return appreciation


@transaction.atomic
def feedback_rate(*, feedback: Feedback, user: Teacher, rating: str, reason: str = "") -> Feedback:
    if feedback.validated_by_id != user.pk:
        raise PermissionDenied("Only the teacher who validated rates the draft.")
    if rating not in Feedback.Rating.values:
        raise ValidationError("Choisissez 👍 ou 👎.")
    if reason and reason not in Feedback.Reason.values:
        raise ValidationError("Raison inconnue.")
    feedback.rating = rating
    feedback.reason = reason if rating == Feedback.Rating.DOWN else ""
    feedback.save(update_fields=["rating", "reason"])
    return feedback


def _ensure_heads_subject(*, user: Teacher, subject_id: int) -> None:
    if not user.is_department_head or not user.headed_subjects.filter(pk=subject_id).exists():
        raise PermissionDenied("Only a head of this subject reviews it.")


def _head_check(*, appreciation: Appreciation, user: Teacher) -> None:
    _ensure_heads_subject(user=user, subject_id=appreciation.subject_id)
    if appreciation.student.school_class.school_id != user.school_id:
        raise PermissionDenied("Another school's appreciation.")
    ensure_term_open(appreciation.term)


@transaction.atomic
def appreciation_approve(
    *, appreciation: Appreciation, user: Teacher, version: int
) -> Appreciation:
    appreciation = Appreciation.objects.select_for_update().get(pk=appreciation.pk)
    _head_check(appreciation=appreciation, user=user)
    _check_version(appreciation, version)
    if appreciation.status != Appreciation.Status.VALIDATED:
        raise ValidationError(
            "Seule une appréciation validée par l'enseignant peut être approuvée."
        )
    appreciation.status = Appreciation.Status.APPROVED
    appreciation.approved_by = user
    appreciation.approved_at = timezone.now()
    appreciation.version += 1
    appreciation.save()
    return appreciation


@transaction.atomic
def appreciation_approve_all(*, assignment: TeachingAssignment, term: Term, user: Teacher) -> int:
    """Approve every validated appréciation of one class in a subject the user heads."""
    _ensure_heads_subject(user=user, subject_id=assignment.subject_id)
    ensure_term_open(term)
    return Appreciation.objects.filter(
        student__school_class_id=assignment.school_class_id,
        subject_id=assignment.subject_id,
        term=term,
        status=Appreciation.Status.VALIDATED,
    ).update(
        status=Appreciation.Status.APPROVED,
        approved_by=user,
        approved_at=timezone.now(),
        version=F("version") + 1,
    )


@transaction.atomic
def appreciation_return(
    *, appreciation: Appreciation, user: Teacher, comment: str, version: int
) -> Appreciation:
    """Send a validated appréciation back to its teacher with a comment."""
    appreciation = Appreciation.objects.select_for_update().get(pk=appreciation.pk)
    _head_check(appreciation=appreciation, user=user)
    _check_version(appreciation, version)
    comment = " ".join((comment or "").split())
    if not comment:
        raise ValidationError("Expliquez à l'enseignant ce qu'il faut revoir.")
    if appreciation.status not in (Appreciation.Status.VALIDATED, Appreciation.Status.APPROVED):
        raise ValidationError("Seule une appréciation validée peut être renvoyée.")
    appreciation.status = Appreciation.Status.RETURNED
    appreciation.return_comment = comment
    appreciation.returned_by = user
    appreciation.returned_at = timezone.now()
    appreciation.approved_by = None
    appreciation.approved_at = None
    appreciation.version += 1
    appreciation.save()
    return appreciation


# --- Quick draft (the model card's form) ----------------------------------------------------


@transaction.atomic
def quick_draft_create(*, user: Teacher, inputs: PromptInputs, level_name: str) -> QuickDraft:
    quick = QuickDraft.objects.create(
        requested_by=user,
        school_id=user.school_id,
        inputs={
            "subject": inputs.subject_name,
            "level": level_name,
            "trimester": inputs.trimester,
            "averages": [None if a is None else float(a) for a in inputs.averages],
            "behaviour": float(inputs.behaviour),
            "participation": float(inputs.participation),
            "work": float(inputs.work),
        },
        prompt_messages=build_messages(inputs),
        prompt_version=PROMPT_VERSION,
    )
    from .tasks import generate_quick_draft

    generate_quick_draft.delay_on_commit(quick.pk)
    return quick


def quick_draft_run(*, quick_draft_id: int, backend: BaseBackend | None = None) -> None:
    quick = QuickDraft.objects.filter(pk=quick_draft_id, status=QuickDraft.Status.QUEUED).first()
    if quick is None:
        return
    backend = backend or get_backend()
    if backend.status != "ready" and not _check_available(backend).available:
        QuickDraft.objects.filter(pk=quick.pk).update(
            status=QuickDraft.Status.FAILED, error_message=MODEL_MISSING_USER_MESSAGE
        )
        return
    try:
        backend.load()
        outcome = draft_with_checks(
            backend=backend,
            items=[
                DraftItem(
                    key=str(quick.pk),
                    messages=quick.prompt_messages,
                    banned_phrases=selectors.school_banned_phrases(school_id=quick.school_id),
                    max_chars=quick.school.appreciation_max_chars,
                    typographic_spaces=quick.school.typographic_spaces,
                )
            ],
            max_attempts=settings.APPRECIATION_MAX_ATTEMPTS,
            seed=settings.APPRECIATION_SEED,
        )[0]
    except ModelLoadError as exc:
        QuickDraft.objects.filter(pk=quick.pk).update(
            status=QuickDraft.Status.FAILED, error_message=exc.user_message
        )
        return
    except Exception:
        logger.exception("Quick draft %s failed", quick.pk)
        QuickDraft.objects.filter(pk=quick.pk).update(
            status=QuickDraft.Status.FAILED, error_message=GENERATION_FAILED_MESSAGE
        )
        return
    QuickDraft.objects.filter(pk=quick.pk, status=QuickDraft.Status.QUEUED).update(
        status=QuickDraft.Status.DONE,
        text=storable(outcome.text),
        flags=[asdict(flag) for flag in outcome.flags],
        attempts=outcome.attempts,
        is_test_model=bool(backend.model_info().get("test_model", False)),
    )
