"""Model versions: the first one from the settings, candidates, promotion and rollback.

A shared model drafts for every school: only superusers promote or roll back, and both are
audited. Workers read the active version at the start of each job (runner), so a promotion
takes effect at their next job, without a restart.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record

from ..adapter_files import adapter_weights_sha256
from ..backends import BaseBackend, get_only_backend
from ..models import Draft, ModelVersion

logger = logging.getLogger(__name__)

NO_PREVIOUS_VERSION_MESSAGE = (
    "Aucune version précédente : la version en service n'en a remplacé aucune."
)


def _settings_model() -> dict[str, Any]:
    """The model the settings name: the model card's adapter, or the offline test model."""
    return {
        "base_model": settings.APPRECIATION_BASE_MODEL,
        "adapter": settings.APPRECIATION_ADAPTER,
        "is_test_model": bool(settings.APPRECIATION_TEST_MODEL),
    }


def model_version_next_name() -> str:
    """The next free "v<N>" (a training run names its adapter's folder after it)."""
    number = ModelVersion.objects.count() + 1
    while ModelVersion.objects.filter(name=f"v{number}").exists():
        number += 1
    return f"v{number}"


@transaction.atomic
def model_version_ensure_active() -> ModelVersion:
    """The active version; the first one is created from the settings when there is none.

    Lazy and idempotent (the worker calls it at each job start): a fresh database, `make run`
    and the tests need no data migration, and the version is the model the worker's settings
    name. While the version in service is one the settings made (not a trained one), it
    follows them: settings naming another model (a local folder instead of a hub id, the real
    adapter after the offline test model) put that model in service, audited. Never a switch
    from a real model to the test model: a misconfigured worker must not put a random model in
    service for every school. A promoted, trained version is never replaced by the settings.
    """
    version = (
        ModelVersion.objects.select_for_update().filter(state=ModelVersion.State.ACTIVE).first()
    )
    wanted = _settings_model()
    if version is not None:
        if not _from_settings(version) or all(
            getattr(version, field) == value for field, value in wanted.items()
        ):
            return version
        if wanted["is_test_model"] and not version.is_test_model:
            logger.warning(
                "The settings name the test model; version %s (real) stays in service",
                version.name,
            )
            return version
    try:
        with transaction.atomic():  # two workers starting at once: one creates, one re-reads
            return _activate_settings_model(current=version, wanted=wanted)
    except IntegrityError:
        return ModelVersion.objects.get(state=ModelVersion.State.ACTIVE)


def _from_settings(version: ModelVersion) -> bool:
    return version.parent_id is None and version.training_settings.get("source") == "settings"


def _activate_settings_model(*, current: ModelVersion | None, wanted: dict) -> ModelVersion:
    now = timezone.now()
    version = (
        ModelVersion.objects.select_for_update()
        .filter(**wanted, parent=None, training_settings__source="settings")
        .exclude(state=ModelVersion.State.ACTIVE)
        .order_by("pk")
        .first()
    )
    if version is None:
        version = ModelVersion.objects.create(
            name=model_version_next_name(),
            **wanted,
            adapter_sha256=adapter_weights_sha256(wanted["adapter"]),
            training_settings={"source": "settings"},
        )
    if current is not None:
        current.state = ModelVersion.State.RETIRED
        current.retired_at = now
        current.save(update_fields=["state", "retired_at"])
    version.state = ModelVersion.State.ACTIVE
    version.promoted_at = now
    version.retired_at = None
    version.replaced = current
    version.save(update_fields=["state", "promoted_at", "retired_at", "replaced"])
    if current is not None:
        audit_record(
            event=AuditEvent.Event.MODEL_VERSION_PROMOTED,
            version_id=version.pk,
            version=version.name,
            previous_id=current.pk,
            previous=current.name,
            reason="settings",
        )
    logger.info(
        "Model version %s (%s + %s) active, from the settings%s",
        version.name,
        version.base_model,
        version.adapter,
        f" (replacing {current.name})" if current else "",
    )
    return version


@transaction.atomic
def model_version_register_candidate(
    *,
    base_model: str,
    adapter: str,
    name: str = "",
    parent: ModelVersion | None = None,
    training_data: dict | None = None,
    training_settings: dict | None = None,
    is_test_model: bool | None = None,
    from_base: bool = False,
    user=None,
) -> ModelVersion:
    """A new adapter (a training run's output) as a candidate: nothing drafts with it until a
    superuser promotes it. parent: the version it was trained from (default: the active one;
    none when from_base: a LoRA trained afresh on the base model); is_test_model follows the
    parent unless given. Its weights' SHA-256 is computed here."""
    if parent is None and not from_base:
        parent = model_version_ensure_active()
    version = ModelVersion.objects.create(
        name=name or model_version_next_name(),
        base_model=base_model,
        adapter=adapter,
        adapter_sha256=adapter_weights_sha256(adapter),
        parent=parent,
        training_data=training_data or {},
        training_settings=training_settings or {},
        is_test_model=(
            bool(parent and parent.is_test_model) if is_test_model is None else is_test_model
        ),
        state=ModelVersion.State.CANDIDATE,
    )
    audit_record(
        event=AuditEvent.Event.MODEL_VERSION_REGISTERED,
        actor=user,
        version_id=version.pk,
        version=version.name,
        parent_id=parent.pk if parent else None,
        adapter_sha256=version.adapter_sha256,
    )
    logger.info("Model version %s registered as a candidate (%s)", version.name, adapter)
    return version


def _ensure_superuser(user) -> None:
    if not getattr(user, "is_superuser", False):
        # A shared model drafts for every school: no school's admin changes it.
        raise PermissionDenied("Only a superuser changes the model version in service.")


def _swap_active(*, version: ModelVersion, current: ModelVersion | None, promotion: bool) -> None:
    """Retire `current`, activate `version` (in that order: one active at every statement)."""
    now = timezone.now()
    if current is not None:
        current.state = ModelVersion.State.RETIRED
        current.retired_at = now
        current.save(update_fields=["state", "retired_at"])
    version.state = ModelVersion.State.ACTIVE
    version.promoted_at = now
    version.retired_at = None
    fields = ["state", "promoted_at", "retired_at"]
    if promotion:
        version.replaced = current
        fields.append("replaced")
    version.save(update_fields=fields)


@transaction.atomic
def model_version_promote(
    *, version: ModelVersion, user, request: HttpRequest | None = None
) -> ModelVersion:
    """Put a candidate (or a retired version) in service; the active one is retired and
    remembered, for « Revenir à la version précédente ». Workers load it at their next job."""
    _ensure_superuser(user)
    current = model_version_ensure_active()
    # Row locks in primary-key order: two promotions at once wait for each other.
    locked = {
        v.pk: v
        for v in ModelVersion.objects.select_for_update()
        .filter(pk__in=[version.pk, current.pk])
        .order_by("pk")
    }
    version, current = locked[version.pk], locked[current.pk]
    if version.pk == current.pk:
        raise ValidationError(f"La version {version.name} est déjà en service.")
    _swap_active(version=version, current=current, promotion=True)
    audit_record(
        event=AuditEvent.Event.MODEL_VERSION_PROMOTED,
        actor=user,
        request=request,
        version_id=version.pk,
        version=version.name,
        previous_id=current.pk,
        previous=current.name,
    )
    logger.info(
        "Model version %s promoted by user %s (was %s)", version.name, user.pk, current.name
    )
    return version


@transaction.atomic
def model_version_roll_back(*, user, request: HttpRequest | None = None) -> ModelVersion:
    """Put back in service the version the active one replaced when it was promoted; the
    active one is retired. Rolling back again goes one more promotion back."""
    _ensure_superuser(user)
    current = model_version_ensure_active()
    current = ModelVersion.objects.select_for_update().get(pk=current.pk)
    if current.replaced_id is None:
        raise ValidationError(NO_PREVIOUS_VERSION_MESSAGE)
    previous = ModelVersion.objects.select_for_update().get(pk=current.replaced_id)
    _swap_active(version=previous, current=current, promotion=False)
    audit_record(
        event=AuditEvent.Event.MODEL_VERSION_ROLLED_BACK,
        actor=user,
        request=request,
        version_id=previous.pk,
        version=previous.name,
        previous_id=current.pk,
        previous=current.name,
    )
    logger.info(
        "Model version rolled back by user %s: %s -> %s", user.pk, current.name, previous.name
    )
    return previous


def model_version_backend(*, version: ModelVersion) -> BaseBackend:
    """The worker's backend for `version`, the only model it keeps: the previous version's
    is released first (two 3B models never share a GPU)."""
    return get_only_backend(
        base_model=version.base_model, adapter=version.adapter, test_model=version.is_test_model
    )


# --- The candidate's blind share of the drafts (APPRECIATION_CANDIDATE_SHARE) ------------------


def blind_candidate(*, active: ModelVersion) -> ModelVersion | None:
    """The newest candidate, when a share of the drafts goes to it; never a test model while
    a real one is in service."""
    if candidate_share() <= 0:
        return None
    candidate = (
        ModelVersion.objects.filter(state=ModelVersion.State.CANDIDATE)
        .order_by("-created_at", "-pk")
        .first()
    )
    if candidate is None or (candidate.is_test_model and not active.is_test_model):
        return None
    return candidate


def candidate_share() -> float:
    return min(1.0, max(0.0, float(getattr(settings, "APPRECIATION_CANDIDATE_SHARE", 0.0))))


def _draw(*, candidate_id: int, draft_id: int) -> str:
    # A fixed, well-mixed order of a job's drafts for each candidate: the same drafts are
    # chosen at every delivery of the job, and no student is always the one chosen.
    return hashlib.sha256(f"{candidate_id}:{draft_id}".encode()).hexdigest()


@transaction.atomic
def drafts_plan_candidate_share(*, job_id: int, active: ModelVersion) -> ModelVersion | None:
    """Mark the job's drafts the newest candidate writes: round(share × the class's drafts),
    the same ones at every delivery (the worker drafts them first, with the candidate; the rest,
    and any it could not write, with the active version). Returns the candidate when pending
    drafts await it. The draft records the version that wrote it; the teacher is not told
    which (pages hide every version label while the share is above 0)."""
    # A plan of an earlier delivery (another candidate since, or the share set back to 0)
    # is forgotten: unplanned drafts are the active version's.
    Draft.objects.filter(
        job_id=job_id,
        status=Draft.Status.PENDING,
        model_version__state=ModelVersion.State.CANDIDATE,
    ).update(model_version=None)
    candidate = blind_candidate(active=active)
    if candidate is None:
        return None
    draft_ids = sorted(
        Draft.objects.filter(job_id=job_id).values_list("pk", flat=True),
        key=lambda pk: _draw(candidate_id=candidate.pk, draft_id=pk),
    )
    chosen = draft_ids[: round(candidate_share() * len(draft_ids))]
    planned = Draft.objects.filter(pk__in=chosen, status=Draft.Status.PENDING).update(
        model_version=candidate
    )
    return candidate if planned else None


@transaction.atomic
def drafts_unplan_candidate(*, job_id: int, candidate: ModelVersion) -> int:
    """The candidate could not be loaded: its pending drafts go to the active version."""
    return Draft.objects.filter(
        job_id=job_id, status=Draft.Status.PENDING, model_version=candidate
    ).update(model_version=None)
