"""The evaluation of a candidate version against a reference (the active version) on the
held-out test rows: services (writes), the rows it reads, and the page's selectors.

The torch side (loss, drafts) is worker.evaluation, imported inside model_evaluation_run only:
the web process never loads it. The figures and the gate are learning.evaluation_metrics.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from classes.models import Student, Teacher
from generation.checks import KnownNames, clean_text
from generation.models import ModelVersion

from .evaluation_metrics import (
    GATE_LABELS,
    GateThresholds,
    compare_versions,
    promotion_gate,
    version_figures,
    word_count_distribution,
)
from .models import ModelEvaluation, PanelItem, TrainingRun
from .training_data import TEST, TrainingData, held_out_rows

logger = logging.getLogger(__name__)

CANDIDATE = "candidate"
REFERENCE = "reference"


class EvaluationError(Exception):
    """A request the platform refuses; the message is French, for the page."""


# --- The rows -----------------------------------------------------------------------------------


def evaluation_rows(*, training_run: TrainingRun | None = None) -> list[dict[str, Any]]:
    """The held-out test rows: {"key", "messages" (system + user), "final_text", "inputs"}.

    The pseudonymous rows of the dataset export (exports.dataset, the same code) of the
    schools whose feedback may train shared models, in the test split of
    learning.training_data (by student and teacher). For a training run's candidate: the test
    split written with the run, so that no row it trained on is scored.
    """
    row_ids = None
    if training_run is not None and training_run.output_dir:
        folder = Path(training_run.output_dir) / "data"
        if (folder / "snapshot.json").is_file():
            row_ids = {int(row["id"]) for row in TrainingData.read(folder).splits[TEST]}
    return [
        {
            "key": str(row.row_id),
            "messages": row.prompt_messages,
            "final_text": row.final_text,
            "inputs": row.inputs,
        }
        for row in held_out_rows(row_ids=row_ids)
    ]


def evaluation_known_names() -> KnownNames:
    """Every student's name of the schools whose rows are evaluated: a draft quoting one fails
    the "no name" check (the inputs are pseudonymous, the model cannot know a name)."""
    names = []
    for values in Student.objects.filter(
        school_class__school__feedback_trains_shared_models=True
    ).values_list("last_name", "first_name"):
        names.extend(values)
    return KnownNames(names)


# --- Services -----------------------------------------------------------------------------------


def _require_superuser(user: Teacher) -> None:
    if not (user.is_active and user.is_superuser):
        raise PermissionError("Only a superuser evaluates model versions.")


@transaction.atomic
def model_evaluation_create(
    *,
    user: Teacher,
    candidate: ModelVersion,
    reference: ModelVersion | None = None,
    seed: int | None = None,
    send: bool = True,
) -> ModelEvaluation:
    """A queued evaluation of `candidate` against `reference` (default: the active version),
    sent to the GPU queue after commit. The same pair waiting or running is not queued twice."""
    _require_superuser(user)
    return _queue(candidate=candidate, reference=reference, seed=seed, send=send)


@transaction.atomic
def model_evaluation_create_for_training_run(
    *, training_run: TrainingRun, send: bool = True
) -> ModelEvaluation:
    """The evaluation of a finished training run's candidate against the active version (the
    training's own service calls it: no user, the run was started by a superuser)."""
    if training_run.result_version is None:
        raise EvaluationError("Cet entraînement n'a pas produit de version à évaluer.")
    return _queue(
        candidate=training_run.result_version,
        reference=None,
        seed=None,
        send=send,
        training_run=training_run,
    )


def _queue(
    *,
    candidate: ModelVersion,
    reference: ModelVersion | None,
    seed: int | None,
    send: bool,
    training_run: TrainingRun | None = None,
) -> ModelEvaluation:
    if reference is None:
        reference = ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).first()
        if reference is None:
            raise EvaluationError("Aucune version n'est en service : rien à quoi comparer.")
    if reference.pk == candidate.pk:
        raise EvaluationError("Une version ne se compare pas à elle-même.")
    pending = (
        ModelEvaluation.objects.select_for_update()
        .filter(
            candidate=candidate,
            reference=reference,
            state__in=(ModelEvaluation.State.QUEUED, ModelEvaluation.State.RUNNING),
        )
        .first()
    )
    if pending is not None:
        return pending
    evaluation = ModelEvaluation.objects.create(
        candidate=candidate,
        reference=reference,
        training_run=training_run,
        seed=settings.APPRECIATION_EVALUATION_SEED if seed is None else seed,
    )
    if send:
        send_evaluation(evaluation.pk)
    logger.info(
        "Evaluation %s queued: %s against %s", evaluation.pk, candidate.name, reference.name
    )
    return evaluation


EVALUATE_VERSION = "learning.tasks.evaluate_version"


def send_evaluation(evaluation_id: int) -> None:
    """By name, after commit: the services never import the tasks."""
    from celery import current_app

    current_app.tasks[EVALUATE_VERSION].delay_on_commit(evaluation_id)


@transaction.atomic
def _claim(evaluation_id: int) -> ModelEvaluation | None:
    evaluation = (
        ModelEvaluation.objects.select_for_update()
        .select_related("candidate", "reference")
        .filter(pk=evaluation_id)
        .first()
    )
    if evaluation is None or evaluation.state in (
        ModelEvaluation.State.FINISHED,
        ModelEvaluation.State.FAILED,
    ):
        return None
    # A RUNNING one is a redelivery after a worker died: done again from the start.
    evaluation.state = ModelEvaluation.State.RUNNING
    evaluation.error_message = ""
    evaluation.save(update_fields=["state", "error_message"])
    return evaluation


def model_evaluation_run(
    *, evaluation_id: int, rows: Sequence[dict[str, Any]] | None = None
) -> ModelEvaluation | None:
    """Evaluate both versions (one model in memory at a time) and record the figures, the gate
    and the panel's pairs. A finished or failed evaluation is left as it is (None)."""
    evaluation = _claim(evaluation_id)
    if evaluation is None:
        logger.info("Evaluation %s already done or gone: nothing to do", evaluation_id)
        return None
    rows = list(evaluation_rows(training_run=evaluation.training_run) if rows is None else rows)
    if not rows:
        return _fail(
            evaluation,
            "Aucune appréciation validée dans la partie test des données : rien à évaluer.",
        )
    examples = [
        {"key": row["key"], "messages": row["messages"], "reference_text": row["final_text"]}
        for row in rows
    ]
    from worker.evaluation import evaluate_model

    outputs = {}
    try:
        for role, version in ((CANDIDATE, evaluation.candidate), (REFERENCE, evaluation.reference)):
            outputs[role] = evaluate_model(
                base_model=version.base_model,
                adapter=version.adapter,
                examples=examples,
                seed=evaluation.seed,
                batch_size=settings.APPRECIATION_EVALUATION_BATCH_SIZE,
            )
    except Exception as exc:
        # Recorded and logged with its traceback: the page says it, the task ends.
        logger.exception("Evaluation %s failed", evaluation_id)
        return _fail(
            evaluation,
            "Le modèle n'a pas pu être chargé ou évalué"
            f" ({type(exc).__name__}) : voir les journaux du serveur de calcul.",
        )
    return model_evaluation_record(
        evaluation=evaluation, rows=rows, outputs=outputs, known_names=evaluation_known_names()
    )


def _fail(evaluation: ModelEvaluation, message: str) -> ModelEvaluation:
    evaluation.state = ModelEvaluation.State.FAILED
    evaluation.error_message = message
    evaluation.finished_at = timezone.now()
    evaluation.save(update_fields=["state", "error_message", "finished_at"])
    return evaluation


@transaction.atomic
def model_evaluation_record(
    *,
    evaluation: ModelEvaluation,
    rows: Sequence[dict[str, Any]],
    outputs: dict[str, dict[str, Any]],
    known_names: KnownNames | None = None,
    thresholds: GateThresholds | None = None,
) -> ModelEvaluation:
    """The figures, the gate, the panel's pairs and the candidate's summary, from each
    version's loss and raw drafts (worker.evaluation.evaluate_model's answers)."""
    references = [row["final_text"] for row in rows]
    drafts = {
        role: [clean_text(outputs[role]["drafts"][row["key"]]) for row in rows]
        for role in (CANDIDATE, REFERENCE)
    }
    versions = {CANDIDATE: evaluation.candidate, REFERENCE: evaluation.reference}
    figures = {}
    for role in (CANDIDATE, REFERENCE):
        figures[role] = {
            "version": versions[role].name,
            "version_id": versions[role].pk,
            **version_figures(
                drafts=drafts[role],
                references=references,
                loss=float(outputs[role]["loss"]),
                loss_tokens=int(outputs[role]["loss_tokens"]),
                known_names=known_names,
            ),
            "seconds": outputs[role].get("seconds"),
        }
    keys = sorted(row["key"] for row in rows)
    evaluation.metrics = {
        "rows": len(rows),
        "seed": evaluation.seed,
        "rows_sha256": hashlib.sha256(json.dumps(keys).encode()).hexdigest(),
        "teachers": {"words": word_count_distribution(references)},
        CANDIDATE: _json_safe(figures[CANDIDATE]),
        REFERENCE: _json_safe(figures[REFERENCE]),
    }
    evaluation.gate = _json_safe(
        promotion_gate(
            candidate=figures[CANDIDATE],
            reference=figures[REFERENCE],
            rows=len(rows),
            thresholds=thresholds or GateThresholds.from_settings(),
        )
    )
    evaluation.state = ModelEvaluation.State.FINISHED
    evaluation.finished_at = timezone.now()
    evaluation.save(update_fields=["metrics", "gate", "state", "finished_at"])

    # The panel's pairs: the same inputs, the candidate as A, the reference as B. A redelivered
    # task replaces the pairs of its first try.
    evaluation.panel_items.all().delete()
    items = [
        PanelItem(
            version_a=evaluation.candidate,
            version_b=evaluation.reference,
            evaluation=evaluation,
            inputs=dict(row.get("inputs") or {}),
            prompt_messages=list(row["messages"]),
            text_a=text_a,
            text_b=text_b,
        )
        for row, text_a, text_b in zip(rows, drafts[CANDIDATE], drafts[REFERENCE], strict=True)
        # The same text twice asks the panel nothing.
        if text_a.strip() and text_b.strip() and text_a != text_b
    ][: settings.APPRECIATION_EVALUATION_PANEL_ITEMS]
    PanelItem.objects.bulk_create(items)

    candidate = evaluation.candidate
    candidate.evaluation = evaluation_summary(evaluation)
    candidate.save(update_fields=["evaluation"])
    logger.info(
        "Evaluation %s finished: gate %s, %d panel pairs",
        evaluation.pk,
        "passed" if evaluation.gate["passed"] else "failed",
        len(items),
    )
    return evaluation


def evaluation_summary(evaluation: ModelEvaluation) -> dict[str, Any]:
    """What ModelVersion.evaluation keeps of the latest evaluation."""
    metrics = evaluation.metrics
    candidate, reference = metrics[CANDIDATE], metrics[REFERENCE]

    def pair(key: str) -> dict[str, Any]:
        return {"candidate": candidate.get(key), "reference": reference.get(key)}

    return {
        "evaluation_id": evaluation.pk,
        "reference": evaluation.reference.name,
        "finished_at": evaluation.finished_at.isoformat() if evaluation.finished_at else None,
        "rows": metrics["rows"],
        "gate_passed": evaluation.gate["passed"],
        "failed_criteria": [c["name"] for c in evaluation.gate["criteria"] if not c["passed"]],
        # In French, for the promotion page (generation's admin cannot import this app).
        "failed_criteria_labels": [
            GATE_LABELS[c["name"]] for c in evaluation.gate["criteria"] if not c["passed"]
        ],
        "loss": pair("loss"),
        "check_pass_share": {
            "candidate": candidate["checks"]["all"],
            "reference": reference["checks"]["all"],
        },
        "chrf": pair("chrf"),
        "edit_distance": pair("edit_distance"),
        "words_mean": {
            "candidate": candidate["words"]["mean"],
            "reference": reference["words"]["mean"],
            "teachers": metrics["teachers"]["words"]["mean"],
        },
    }


def _json_safe(value: Any) -> Any:
    """NaN and infinities as None: JSON (and PostgreSQL's jsonb) has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


# --- Access and selectors -----------------------------------------------------------------------


def access_model_evaluation_by_id(user: Teacher, evaluation_id: int) -> ModelEvaluation:
    """Superusers only; a missing evaluation and a forbidden one answer the same 404."""
    if not (user.is_active and user.is_superuser):
        raise Http404("Not a superuser")
    return get_object_or_404(
        ModelEvaluation.objects.select_related("candidate", "reference"), pk=evaluation_id
    )


def access_model_version_by_id(user: Teacher, version_id: int) -> ModelVersion:
    if not (user.is_active and user.is_superuser):
        raise Http404("Not a superuser")
    return get_object_or_404(ModelVersion, pk=version_id)


def evaluations_for_user(*, user: Teacher) -> list[ModelEvaluation]:
    if not (user.is_active and user.is_superuser):
        return []
    return list(ModelEvaluation.objects.select_related("candidate", "reference")[:50])


def latest_evaluation_of(*, version: ModelVersion) -> ModelEvaluation | None:
    return (
        ModelEvaluation.objects.select_related("candidate", "reference")
        .filter(candidate=version)
        .first()
    )


def comparison(evaluation: ModelEvaluation) -> dict[str, list[str]] | None:
    """Better / worse / equal, figure by figure, once finished."""
    metrics = evaluation.metrics
    if evaluation.state != ModelEvaluation.State.FINISHED or CANDIDATE not in metrics:
        return None
    return compare_versions(metrics[CANDIDATE], metrics[REFERENCE])
