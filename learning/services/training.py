"""Training runs: created by a superuser (page or `manage.py train_adapter`), executed by the
GPU worker's task, ending in a candidate model version.

States: queued -> running -> finished | failed | cancelled (cancelling in between when asked).
A running run writes its progress (step, loss, validation loss) to TrainingRun.progress, checks
between steps whether it was cancelled, and hands the worker back to drafting: when generation
jobs wait and the run has held the worker APPRECIATION_TRAINING_MAX_PAUSE_SECONDS (or at the
latest every APPRECIATION_TRAINING_SEGMENT_SECONDS), it saves a checkpoint, sends itself again
behind them and returns. A run found RUNNING again (its task redelivered after a worker
restart, or sent again by `training_runs_recover`) resumes from its latest checkpoint.

The torch side is worker.training, imported inside the functions that run on the worker.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from generation.models import GenerationJob, ModelVersion, QuickDraft
from generation.services.versions import (
    model_version_next_name,
    model_version_register_candidate,
)

from .. import queue
from ..evaluation import EvaluationError, model_evaluation_create_for_training_run
from ..models import TrainingRun
from ..training_data import (
    TRAIN,
    VALIDATION,
    TrainingData,
    TrainingDataError,
    opted_in_school_ids,
    training_data_build,
)

logger = logging.getLogger(__name__)

TERMINAL_STATES = (
    TrainingRun.State.FINISHED,
    TrainingRun.State.FAILED,
    TrainingRun.State.CANCELLED,
)
# The hyperparameters a run may set (page, command); others are ignored.
SETTING_TYPES: dict[str, type] = {
    "epochs": float,
    "max_steps": int,
    "learning_rate": float,
    "batch_size": int,
    "gradient_accumulation_steps": int,
    "max_length": int,
    "save_steps": int,
    "eval_steps": int,
    "logging_steps": int,
    "dpo_beta": float,
    "seed": int,
}


class TrainingRefused(Exception):
    """Why a run cannot start, in French, for the page and the command."""


def training_settings(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """APPRECIATION_TRAINING_DEFAULTS with a run's overrides, typed and checked."""
    values = dict(settings.APPRECIATION_TRAINING_DEFAULTS)
    for key, value in (overrides or {}).items():
        if key not in SETTING_TYPES or value in (None, ""):
            continue
        try:
            values[key] = SETTING_TYPES[key](value)
        except (TypeError, ValueError):
            raise TrainingRefused(f"Réglage « {key} » invalide : {value!r}.") from None
    for key in ("batch_size", "gradient_accumulation_steps", "save_steps", "eval_steps"):
        if values[key] < 1:
            raise TrainingRefused(f"Le réglage « {key} » doit être au moins 1.")
    if values["max_steps"] < 0 or values["epochs"] <= 0 or values["learning_rate"] <= 0:
        raise TrainingRefused("Époques, pas et taux d'apprentissage doivent être positifs.")
    return values


@transaction.atomic
def training_run_create(
    *,
    user,
    method: str = TrainingRun.Method.SFT,
    start_from: str | None = None,
    settings: dict[str, Any] | None = None,  # noqa: A002 - the run's field name
    original_dataset_path: str = "",
    enqueue: bool = True,
) -> TrainingRun:
    """A queued run (sent to the GPU worker after commit unless enqueue=False), superusers
    only. Refuses (TrainingRefused, French) when no school opted in, the data cannot be built
    or the train split has fewer than APPRECIATION_TRAINING_MIN_ROWS of the platform's rows."""
    from django.conf import settings as django_settings

    if user is None or not user.is_superuser:
        raise PermissionDenied
    if method not in TrainingRun.Method.values:
        raise TrainingRefused(f"Méthode inconnue : {method}.")
    start_from = start_from or django_settings.APPRECIATION_TRAINING_START_FROM
    if start_from not in TrainingRun.StartFrom.values:
        raise TrainingRefused(f"Point de départ inconnu : {start_from}.")
    run_settings = training_settings(settings)
    if not opted_in_school_ids():
        raise TrainingRefused(
            "Aucun établissement n'a accepté que ses retours entraînent les modèles partagés :"
            " l'administrateur d'un établissement doit d'abord l'activer."
        )
    try:
        data = training_data_build(method=method, original_dataset_path=original_dataset_path)
    except TrainingDataError as exc:
        raise TrainingRefused(str(exc)) from exc
    own_rows = data.counts()[TRAIN] - data.original_rows
    minimum = django_settings.APPRECIATION_TRAINING_MIN_ROWS
    if own_rows < minimum:
        raise TrainingRefused(
            f"Trop peu de lignes pour entraîner : {own_rows} dans la partie d'entraînement"
            f" (au moins {minimum} sont nécessaires)."
        )
    if data.counts()[VALIDATION] == 0:
        raise TrainingRefused(
            "Aucune ligne de validation : il faut des retours d'au moins deux groupes"
            " d'élèves et d'enseignants distincts."
        )
    parent = (
        ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).first()
        if start_from == TrainingRun.StartFrom.ACTIVE
        else None
    )
    run = TrainingRun.objects.create(
        requested_by=user,
        method=method,
        start_from=start_from,
        parent_version=parent,
        settings=run_settings,
        data=data.snapshot(),
        original_dataset_path=str(original_dataset_path or ""),
    )
    run.output_dir = str(Path(django_settings.APPRECIATION_TRAINING_DIR) / f"run-{run.pk}")
    run.save(update_fields=["output_dir"])
    audit_record(
        event=AuditEvent.Event.DATASET_DOWNLOAD,
        actor=user,
        school=None,
        source="training run",
        training_run=run.pk,
        fmt=method,
        rows=data.counts(),
        schools=data.schools,
    )
    if enqueue:
        queue.send_training_run(run.pk)
    return run


@transaction.atomic
def training_run_cancel(*, user, run_id: int) -> TrainingRun:
    """A queued run is cancelled at once; a running one at its next step (CANCELLING)."""
    if user is None or not user.is_superuser:
        raise PermissionDenied
    run = TrainingRun.objects.select_for_update().get(pk=run_id)
    if run.state == TrainingRun.State.QUEUED:
        run.state = TrainingRun.State.CANCELLED
        run.finished_at = timezone.now()
    elif run.state == TrainingRun.State.RUNNING:
        run.state = TrainingRun.State.CANCELLING
    run.save(update_fields=["state", "finished_at"])
    return run


def _claim_lease() -> timedelta:
    return timedelta(seconds=settings.APPRECIATION_STALL_SECONDS)


@transaction.atomic
def _claim(*, run_id: int, hostname: str) -> TrainingRun | None:
    """The run, now RUNNING and claimed by this worker; None when there is nothing to do
    (finished, cancelled, or held by another live worker)."""
    run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
    if run is None or run.state in TERMINAL_STATES:
        return None
    now = timezone.now()
    if run.state == TrainingRun.State.CANCELLING:
        run.state = TrainingRun.State.CANCELLED
        run.finished_at = now
        run.claimed_by = ""
        run.save(update_fields=["state", "finished_at", "claimed_by"])
        return None
    if (
        run.state == TrainingRun.State.RUNNING
        and run.claimed_by
        and run.claimed_by != hostname
        and run.claimed_at is not None
        and run.claimed_at > now - _claim_lease()
    ):
        logger.info("Training run %s is held by %s", run.pk, run.claimed_by)
        return None
    if run.state == TrainingRun.State.QUEUED:
        run.started_at = now
    if not run.output_dir:
        run.output_dir = str(Path(settings.APPRECIATION_TRAINING_DIR) / f"run-{run.pk}")
    run.state = TrainingRun.State.RUNNING
    run.claimed_by = hostname
    run.claimed_at = now
    run.save(update_fields=["state", "started_at", "claimed_by", "claimed_at", "output_dir"])
    return run


def drafting_is_waiting() -> bool:
    """Generation work the GPU worker owes teachers: queued or unfinished jobs, quick drafts."""
    return (
        GenerationJob.objects.filter(status__in=GenerationJob.ACTIVE_STATUSES).exists()
        or QuickDraft.objects.filter(status=QuickDraft.Status.QUEUED).exists()
    )


@dataclass
class _RunControl:
    """The callbacks handed to worker.training: progress, cancel, pause for drafting."""

    run_id: int
    started: float
    progress: dict
    on_progress: Callable[[dict], None] | None = None

    def report(self, *, step: int, total: int, loss: float | None, eval_loss: float | None):
        self.progress["step"] = step
        self.progress["total_steps"] = total
        if loss is not None:
            self.progress.setdefault("loss", []).append([step, round(float(loss), 5)])
        if eval_loss is not None:
            self.progress.setdefault("eval_loss", []).append([step, round(float(eval_loss), 5)])
        TrainingRun.objects.filter(pk=self.run_id).update(
            progress=self.progress, claimed_at=timezone.now()
        )
        if self.on_progress is not None:
            self.on_progress({"step": step, "total": total, "loss": loss, "eval_loss": eval_loss})

    def should_stop(self) -> bool:
        # Also the worker's sign of life: its claim stays fresh while it trains.
        TrainingRun.objects.filter(pk=self.run_id).update(claimed_at=timezone.now())
        return TrainingRun.objects.filter(
            pk=self.run_id, state=TrainingRun.State.CANCELLING
        ).exists()

    def should_pause(self) -> bool:
        held = time.monotonic() - self.started
        if held >= settings.APPRECIATION_TRAINING_SEGMENT_SECONDS:
            return True
        return held >= settings.APPRECIATION_TRAINING_MAX_PAUSE_SECONDS and drafting_is_waiting()


def _start_point(run: TrainingRun) -> tuple[str, str | None]:
    """(base model, adapter to go on training or None for a fresh LoRA)."""
    parent = run.parent_version
    base_model = parent.base_model if parent else settings.APPRECIATION_BASE_MODEL
    if run.start_from == TrainingRun.StartFrom.BASE:
        return base_model, None
    return base_model, parent.adapter if parent else settings.APPRECIATION_ADAPTER


def _run_data(run: TrainingRun) -> TrainingData:
    """The rows the run trains on, built once and kept in its folder: a resumed run goes on
    with the very rows it started with, whatever feedback came since."""
    folder = Path(run.output_dir) / "data"
    if (folder / "snapshot.json").is_file():
        return TrainingData.read(folder)
    data = training_data_build(
        method=run.method, original_dataset_path=run.original_dataset_path or None
    )
    data.write(folder)
    TrainingRun.objects.filter(pk=run.pk).update(data=data.snapshot())
    return data


def training_run_execute(
    *,
    run_id: int,
    hostname: str,
    requeue: bool = True,
    on_progress: Callable[[dict], None] | None = None,
) -> TrainingRun | None:
    """Run (or resume) a training on this worker; called by the task. Returns the run as it
    ends this call: finished, failed, cancelled, or still running (paused for drafting and,
    with requeue, sent again behind the waiting drafts). on_progress: each report, for the
    command's output."""
    run = _claim(run_id=run_id, hostname=hostname)
    if run is None:
        return TrainingRun.objects.filter(pk=run_id).first()
    from worker.training import PAUSED, TrainingOptions, train_adapter

    progress = dict(run.progress or {})
    control = _RunControl(
        run_id=run.pk, started=time.monotonic(), progress=progress, on_progress=on_progress
    )
    output_dir = Path(run.output_dir)
    try:
        data = _run_data(run)
        base_model, start_adapter = _start_point(run)
        options = TrainingOptions.from_dict({**run.settings, "method": run.method})
        result = train_adapter(
            base_model=base_model,
            start_adapter=start_adapter,
            train_rows=data.splits[TRAIN],
            eval_rows=data.splits[VALIDATION],
            output_dir=output_dir / "checkpoints",
            adapter_dir=output_dir / "adapter",
            options=options,
            progress=control.report,
            should_stop=control.should_stop,
            should_pause=control.should_pause,
        )
    except Exception as exc:
        logger.exception("Training run %s failed", run.pk)
        return _run_end(
            run.pk,
            state=TrainingRun.State.FAILED,
            progress=progress,
            error_message=f"L'entraînement a échoué ({type(exc).__name__}) : {exc}"[:2000],
        )
    progress["step"] = result.global_step
    progress["total_steps"] = result.total_steps
    progress.setdefault("resumed_from", []).append(result.resumed_from_step)
    if result.status == PAUSED:
        progress["pauses"] = progress.get("pauses", 0) + 1
        TrainingRun.objects.filter(pk=run.pk).update(progress=progress, claimed_by="")
        if requeue:
            queue.send_training_run(run.pk)
        logger.info("Training run %s paused at step %s for drafting", run.pk, result.global_step)
        return TrainingRun.objects.get(pk=run.pk)
    if result.status != "finished":
        _remove_checkpoints(output_dir)
        return _run_end(run.pk, state=TrainingRun.State.CANCELLED, progress=progress)
    progress["final_eval_loss"] = result.eval_loss
    progress["trainable_parameters"] = result.trainable_parameters
    run = _run_finish(run.pk, result=result, options=options, progress=progress)
    _remove_checkpoints(output_dir)
    return run


def _remove_checkpoints(output_dir: Path) -> None:
    """A run over needs no checkpoint (for the 3B, its optimizer states weigh hundreds of MB);
    its data folder stays: the evaluation reads the held-out test split there."""
    shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)


def _run_end(run_id: int, *, state: str, progress: dict, error_message: str = "") -> TrainingRun:
    TrainingRun.objects.filter(pk=run_id).update(
        state=state,
        progress=progress,
        error_message=error_message,
        finished_at=timezone.now(),
        claimed_by="",
    )
    return TrainingRun.objects.get(pk=run_id)


@transaction.atomic
def _run_finish(run_id: int, *, result, options, progress: dict) -> TrainingRun:
    run = TrainingRun.objects.select_for_update().get(pk=run_id)
    if run.result_version_id is not None:
        return run  # a redelivered task found it done
    parent = run.parent_version  # None: trained afresh on the base model
    name = model_version_next_name()
    models_dir = Path(settings.APPRECIATION_MODELS_DIR)
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / name
    if target.exists():
        target = models_dir / f"{name}-run-{run.pk}"
    shutil.move(result.adapter_dir, target)
    version = model_version_register_candidate(
        name=name,
        base_model=_start_point(run)[0],
        adapter=str(target),
        parent=parent,
        from_base=parent is None,
        user=run.requested_by,
        training_data={**run.data, "training_run": run.pk},
        training_settings={
            **options.as_dict(),
            "start_from": run.start_from,
            "training_run": run.pk,
            "steps": result.global_step,
            "final_eval_loss": result.eval_loss,
        },
        is_test_model=bool(
            settings.APPRECIATION_TEST_MODEL or (parent is not None and parent.is_test_model)
        ),
    )
    run.result_version = version
    run.state = TrainingRun.State.FINISHED
    run.progress = progress
    run.finished_at = timezone.now()
    run.claimed_by = ""
    run.save()
    # Scored against the version in service on the run's own test split, on the GPU queue
    # after this commit: the promotion page then says whether the candidate does better.
    try:
        model_evaluation_create_for_training_run(training_run=run)
    except EvaluationError as error:  # no version in service to compare with
        logger.warning("Candidate %s not evaluated: %s", name, error)
    logger.info("Training run %s finished: candidate %s at %s", run.pk, name, target)
    return run


@transaction.atomic
def training_runs_recover(*, hostname: str) -> list[int]:
    """At a worker's start: the runs it held when it stopped (RUNNING, claimed by this host),
    and any whose worker fell silent past the lease, are sent again; they resume from their
    latest checkpoint. A run that has already brought its worker down
    APPRECIATION_TRAINING_MAX_RESTARTS times (out of memory...) fails instead of looping.
    Returns the ids sent again."""
    stale = timezone.now() - _claim_lease()
    runs = list(
        TrainingRun.objects.select_for_update()
        .filter(state=TrainingRun.State.RUNNING)
        .filter(Q(claimed_by=hostname) | Q(claimed_at__lt=stale) | Q(claimed_at__isnull=True))
    )
    sent = []
    for run in runs:
        progress = dict(run.progress or {})
        progress["restarts"] = progress.get("restarts", 0) + 1
        if progress["restarts"] > settings.APPRECIATION_TRAINING_MAX_RESTARTS:
            run.state = TrainingRun.State.FAILED
            run.finished_at = timezone.now()
            run.error_message = (
                f"Le serveur de calcul s'est arrêté {progress['restarts']} fois pendant cet"
                " entraînement (mémoire insuffisante ?) : réduisez la taille des lots."
            )
            logger.error("Training run %s failed after %s restarts", run.pk, progress["restarts"])
        else:
            sent.append(run.pk)
        run.progress = progress
        run.claimed_by = ""
        run.save(update_fields=["progress", "claimed_by", "state", "finished_at", "error_message"])
    for run_id in sent:
        queue.send_training_run(run_id)
    return sent


def original_dataset_store(*, user, upload) -> str:
    """Keep an uploaded copy of the original dataset (Parquet or CSV) under the training
    folder, under a random name; returns its path for training_run_create."""
    import uuid

    if user is None or not user.is_superuser:
        raise PermissionDenied
    suffix = Path(upload.name).suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise TrainingRefused("Envoyez un fichier .parquet ou .csv.")
    folder = Path(settings.APPRECIATION_TRAINING_DIR) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"original-{uuid.uuid4().hex}{suffix}"
    with target.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return str(target)
