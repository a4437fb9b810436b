"""The worker's runner: claim batches of drafts, write them, recover stalled jobs.

Called by `generation.tasks` (the worker side); it sends jobs again through `generation.queue`."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from classes.models import TeachingAssignment

from .. import queue, selectors
from ..backends import (
    STATUS_READY,
    BaseBackend,
    GenerationProgress,
    ModelAvailability,
    ModelLoadError,
)
from ..drafting import DraftItem, DraftOutcome, draft_with_checks
from ..models import (
    Draft,
    GenerationJob,
    ModelVersion,
    WorkerState,
)
from .review import appreciation_propose
from .versions import (
    drafts_plan_candidate_share,
    drafts_unplan_candidate,
    model_version_backend,
    model_version_ensure_active,
)

logger = logging.getLogger(__name__)

# Deliveries beyond the tasks sent (workers killed again and again) fail the job instead of
# looping; a draft claimed this many times fails alone. The teacher gets "Réessayer".
MAX_REDELIVERIES = 3
MAX_CLAIMS = 3
# The periodic recovery sends a stalled job again; the resends made while no worker showed
# any life are counted (a written draft resets the count), and beyond this the job fails.
MAX_RESENDS = 5
# A batch's decoding step is written at most this often (a GPU decodes a step in ~20 ms; the
# page polls every 2 s).
PROGRESS_INTERVAL_SECONDS = 1.0
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


def worker_state_set(
    *,
    hostname: str,
    state: str,
    backend: BaseBackend | None,
    detail: str = "",
    model_version: ModelVersion | None = None,
):
    info = {}
    if backend is not None:
        try:
            info = backend.model_info()
        except Exception:  # model_info must never hide the real state
            logger.exception("model_info() failed")
    if model_version is not None:
        info["model_version"] = model_version.name
    WorkerState.objects.update_or_create(
        hostname=hostname or socket.gethostname(),
        defaults={"state": state, "model_info": info, "detail": detail},
    )


def worker_check_model(*, hostname: str, backend: BaseBackend | None = None) -> ModelAvailability:
    """At worker start: are the model's files on this machine? Nothing is loaded (that would
    take minutes); the answer is recorded as the worker's state (idle or model missing)."""
    hostname = hostname or socket.gethostname()
    try:
        # The active version's files (the first version is created from the settings).
        backend = backend or model_version_backend(version=model_version_ensure_active())
    except Exception:
        # The check must never stop a worker: the load, later, says what is wrong.
        logger.exception("Worker %s: no backend to check the model with", hostname)
        worker_state_set(hostname=hostname, state=WorkerState.State.IDLE, backend=None)
        return ModelAvailability(available=True)
    availability = check_available(backend)
    _record_availability(hostname=hostname, backend=backend, availability=availability)
    return availability


def check_available(backend: BaseBackend) -> ModelAvailability:
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
        if backend.status != STATUS_READY:
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


def job_fail(job_id: int, *, message: str, detail: str) -> None:
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


def _claim_batch(
    *, job: GenerationJob, hostname: str, size: int, model_version_id: int | None = None
) -> list[Draft]:
    """Take up to `size` drafts of the job for this worker.

    Pending drafts, and running ones whose lease expired or that this very worker held before
    it restarted (a solo-pool worker runs one task at a time: anything it still holds is an
    orphan). A draft claimed MAX_CLAIMS times (its worker keeps dying on it) fails instead.
    model_version_id: only the drafts planned for that (candidate) version; without it, the
    pending drafts planned for a candidate are left to the workers that load it.
    """
    now = timezone.now()
    lease_start = now - timedelta(seconds=settings.APPRECIATION_LEASE_SECONDS)
    drafts = Draft.objects.filter(job=job)
    if model_version_id is None:
        # A subquery, not a join: PostgreSQL cannot lock the nullable side of an outer join.
        candidate_versions = ModelVersion.objects.filter(state=ModelVersion.State.CANDIDATE)
        drafts = drafts.exclude(
            status=Draft.Status.PENDING, model_version_id__in=candidate_versions.values("pk")
        )
    else:
        drafts = drafts.filter(model_version_id=model_version_id)
    with transaction.atomic():
        candidates = list(
            drafts.select_for_update(skip_locked=True)
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


def _write_outcomes(*, job_id: int, outcomes, info: dict, hostname: str = "") -> int:
    """Store drafts (one as it arrives, or a batch), unless the job stopped meanwhile;
    returns how many were written."""
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
                model_version_id=info.get("model_version_id"),
                is_test_model=bool(info.get("test_model", False)),
                generated_at=now,
            ):
                written.append(int(outcome.key))
        for draft in Draft.objects.filter(pk__in=written):
            appreciation_propose(draft=draft)
        if written:
            # Progress: the recovery's count of fruitless resends starts again.
            GenerationJob.objects.filter(pk=job_id).update(heartbeat_at=now, resends=0)
            if hostname:
                # The drafts of this worker's batch still generating are claimed again now,
                # in this transaction: the page's window (drafts_settled_until) stops at the
                # oldest running claim, so it moves past this write only once it commits,
                # and the drafts written one by one show up as they come.
                Draft.objects.filter(
                    job_id=job_id, status=Draft.Status.RUNNING, claimed_by=hostname
                ).update(claimed_at=now)
    return len(written)


class _JobStopped(Exception):
    """The job stopped (cancelled, failed by the recovery) while its batch was generating."""


def _record_progress(*, job_id: int, current: int, total: int) -> bool:
    """Note the batch's decoding step; False when the job is no longer running."""
    return bool(
        GenerationJob.objects.filter(pk=job_id, status=GenerationJob.Status.RUNNING).update(
            progress_step=current, progress_steps=total, heartbeat_at=timezone.now()
        )
    )


class _ProgressRecorder:
    """The backend's on_progress: writes the decoding step at most every
    PROGRESS_INTERVAL_SECONDS, and stops the generation when the job stopped (a cancel takes
    effect within about a second, not at the end of the class)."""

    def __init__(self, *, job_id: int) -> None:
        self.job_id = job_id
        self._last = float("-inf")

    def __call__(self, progress: GenerationProgress) -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_INTERVAL_SECONDS:
            return
        self._last = now
        running = _db_step(
            _record_progress, job_id=self.job_id, current=progress.step, total=progress.steps
        )
        if not running:
            raise _JobStopped(f"Job {self.job_id} stopped during its batch")


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
    # The version in service now: a promotion since the last job is loaded here, no restart.
    version = _db_step(model_version_ensure_active)
    if backend is None and not _draft_candidate_share(job=job, hostname=hostname, active=version):
        return
    backend = backend or model_version_backend(version=version)
    if backend.status != STATUS_READY:
        # Seconds, not the minutes of a load that cannot succeed; and the model may have been
        # installed since the worker started.
        availability = check_available(backend)
        if not availability.available:
            _db_step(
                _record_availability, hostname=hostname, backend=backend, availability=availability
            )
            _db_step(
                job_fail, job.pk, message=availability.user_message, detail=availability.detail
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
        _db_step(job_fail, job.pk, message=exc.user_message, detail=str(exc))
        return
    _db_step(
        worker_state_set,
        hostname=hostname,
        state=WorkerState.State.READY,
        backend=backend,
        model_version=version,
    )

    info = {**backend.model_info(), "model_version_id": version.pk}
    try:
        batch_count = _draft_claimed_batches(job=job, hostname=hostname, backend=backend, info=info)
    except _JobStopped:
        logger.info("Job %s stopped during a batch: the rest of it is not generated", job.pk)
        return
    except DB_ERRORS:
        raise  # not the job's fault: job_run leaves it to the recovery
    except Exception as exc:
        logger.exception("Job %s failed during generation", job.pk)
        if isinstance(exc, ModelLoadError):
            # The model went away mid-class (an inference server down after the retries): the
            # worker says so, and the teacher reads why.
            _db_step(
                worker_state_set,
                hostname=hostname,
                state=WorkerState.State.FAILED,
                backend=backend,
                detail=str(exc),
            )
        _db_step(
            job_fail,
            job.pk,
            message=getattr(exc, "user_message", GENERATION_FAILED_MESSAGE),
            detail=f"{type(exc).__name__}: {exc}",
        )
        return
    if batch_count is None:
        return  # the job stopped between two batches
    _db_step(_finish_if_done, job.pk)
    logger.info("Job %s: this worker drafted %s batch(es)", job.pk, batch_count)


def _draft_claimed_batches(
    *,
    job: GenerationJob,
    hostname: str,
    backend: BaseBackend,
    info: dict,
    model_version_id: int | None = None,
) -> int | None:
    """Claim the job's drafts batch after batch and draft them with `backend`, each written
    as soon as it is final; model_version_id: only those planned for that (candidate) version.

    Returns the number of batches drafted, None when the job stopped between two batches;
    _JobStopped when it stopped during one (a cancel, within a progress interval).
    """
    assignment = job.assignment
    names, banned = _db_step(_job_word_lists, assignment)
    school = assignment.school_class.school
    size = settings.APPRECIATION_BATCH_SIZE or _backend_batch_size(
        backend, rows=_db_step(_job_remaining, job.pk)
    )
    batch_count = 0
    while True:
        status = _db_step(_job_status, job.pk)
        if status != GenerationJob.Status.RUNNING:
            logger.info("Job %s is %s: stopping", job.pk, status)
            return None
        batch = _db_step(
            _claim_batch, job=job, hostname=hostname, size=size, model_version_id=model_version_id
        )
        if not batch:
            return batch_count
        seed = None if job.seed is None else job.seed + batch[0].pk * 1000
        written: set[str] = set()

        def write_one(outcome: DraftOutcome, written=written) -> None:
            # Each draft as soon as it is final: the page shows it while the others of the
            # batch (the whole class, on a CPU) are still being written.
            _db_step(
                _write_outcomes, job_id=job.pk, outcomes=[outcome], info=info, hostname=hostname
            )
            written.add(outcome.key)

        outcomes = draft_with_checks(
            backend=backend,
            items=[
                DraftItem(
                    key=str(draft.pk),
                    messages=draft.prompt_messages,
                    forbidden_names=names,
                    banned_phrases=banned,
                    max_chars=school.appreciation_max_chars,
                    typographic_spaces=school.typographic_spaces,
                )
                for draft in batch
            ],
            max_attempts=settings.APPRECIATION_MAX_ATTEMPTS,
            seed=seed,
            on_outcome=write_one,
            on_progress=_ProgressRecorder(job_id=job.pk),
        )
        # Idempotent: what was written as it came is not written twice.
        rest = [outcome for outcome in outcomes if outcome.key not in written]
        if rest:
            _db_step(_write_outcomes, job_id=job.pk, outcomes=rest, info=info)
        batch_count += 1


def _job_status(job_id: int) -> str:
    return GenerationJob.objects.values_list("status", flat=True).get(pk=job_id)


def _job_word_lists(assignment: TeachingAssignment) -> tuple[list[str], list[str]]:
    return (
        selectors.class_student_names(assignment=assignment),
        selectors.school_banned_phrases(school_id=assignment.school_class.school_id),
    )


def _job_remaining(job_id: int) -> int:
    """The job's drafts not yet written: the class size the backend sizes its batch for."""
    return Draft.objects.filter(
        job_id=job_id, status__in=[Draft.Status.PENDING, Draft.Status.RUNNING]
    ).count()


def _backend_batch_size(backend: BaseBackend, *, rows: int | None = None) -> int:
    # A typical prompt is about 250 tokens (system + user, Llama 3 template).
    return max(1, int(backend.batch_size(prompt_tokens=300, rows=rows or None)))


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
    queue.send_job(job.pk)
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
    for job in GenerationJob.objects.filter(
        pk__in=job_ids, status__in=GenerationJob.ACTIVE_STATUSES
    ):
        GenerationJob.objects.filter(pk=job.pk).update(tasks_sent=F("tasks_sent") + 1)
        queue.send_job(job.pk, on_commit=False)
        logger.warning("Worker %s restarted: job %s sent again", hostname, job.pk)
    return len(job_ids)


def _draft_candidate_share(*, job: GenerationJob, hostname: str, active: ModelVersion) -> bool:
    """First the drafts planned for the newest candidate (APPRECIATION_CANDIDATE_SHARE: its
    blind share of the class), with the candidate's model; the job's main loop then drafts the
    rest with the active one. One model at a time. A candidate that cannot be loaded leaves its
    drafts to the active version; a failure while drafting fails the job as usual (False)."""
    candidate = _db_step(drafts_plan_candidate_share, job_id=job.pk, active=active)
    if candidate is None:
        return True
    try:
        _draft_with_candidate(job=job, hostname=hostname, candidate=candidate)
    except _JobStopped:
        logger.info("Job %s stopped during the candidate's batch", job.pk)
        return False
    except DB_ERRORS:
        raise  # not the job's fault: job_run leaves it to the recovery
    except Exception as exc:
        logger.exception("Job %s failed during generation (candidate %s)", job.pk, candidate)
        _db_step(
            job_fail,
            job.pk,
            message=GENERATION_FAILED_MESSAGE,
            detail=f"{type(exc).__name__}: {exc}",
        )
        return False
    return True


def _draft_with_candidate(*, job: GenerationJob, hostname: str, candidate: ModelVersion) -> None:
    backend = model_version_backend(version=candidate)
    try:
        backend.load()
    except ModelLoadError as exc:
        logger.error("Job %s: candidate %s not loaded (%s)", job.pk, candidate.name, exc)
        _db_step(drafts_unplan_candidate, job_id=job.pk, candidate=candidate)
        return
    info = {**backend.model_info(), "model_version_id": candidate.pk}
    _draft_claimed_batches(
        job=job, hostname=hostname, backend=backend, info=info, model_version_id=candidate.pk
    )
