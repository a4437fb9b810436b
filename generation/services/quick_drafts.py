"""Quick drafts (the model card's form): the web side creates one, the worker drafts it."""

from __future__ import annotations

import logging
from dataclasses import asdict

from django.conf import settings
from django.db import transaction

from classes.models import Teacher

from .. import queue, selectors
from ..backends import (
    STATUS_READY,
    BaseBackend,
    ModelLoadError,
)
from ..drafting import DraftItem, draft_with_checks
from ..models import (
    QuickDraft,
)
from ..prompts import PROMPT_VERSION, PromptInputs, build_messages
from .runner import GENERATION_FAILED_MESSAGE, check_available, storable
from .versions import model_version_backend, model_version_ensure_active

logger = logging.getLogger(__name__)


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
    queue.send_quick_draft(quick.pk)
    return quick


def quick_draft_run(*, quick_draft_id: int, backend: BaseBackend | None = None) -> None:
    quick = QuickDraft.objects.filter(pk=quick_draft_id, status=QuickDraft.Status.QUEUED).first()
    if quick is None:
        return
    version = model_version_ensure_active()
    backend = backend or model_version_backend(version=version)
    availability = check_available(backend) if backend.status != STATUS_READY else None
    if availability is not None and not availability.available:
        # The model's files missing, or its inference server not answering: each says so.
        QuickDraft.objects.filter(pk=quick.pk).update(
            status=QuickDraft.Status.FAILED, error_message=availability.user_message
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
        model_version=version,
    )
