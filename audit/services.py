"""Writes to the security audit log. Keyword-only, typed, atomic."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from .ip import client_ip
from .models import AuditEvent

logger = logging.getLogger("audit")

# Six months at least (AI Act art. 26: deployers keep logs six months; CNIL: 6 to 12 months
# for access logs). Younger events are never deleted.
AUDIT_RETENTION_MIN_DAYS = 183
USERNAME_MAX = AuditEvent._meta.get_field("actor_username").max_length


def _authenticated_user(request: HttpRequest | None):
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


@transaction.atomic
def audit_record(
    *,
    event: str,
    actor=None,
    request: HttpRequest | None = None,
    school=None,
    actor_username: str | None = None,
    **detail: Any,
) -> AuditEvent:
    """Record one security event.

    actor: who did it (default: the request's authenticated user); school: whose data it
    concerns (default: the actor's school); detail: JSON-able facts (ids, counts, file kind),
    never a password, never a student's name.
    """
    if event not in AuditEvent.Event.values:
        raise ValueError(f"Unknown audit event {event!r}")
    if actor is None:
        actor = _authenticated_user(request)
    if actor is not None and not getattr(actor, "pk", None):
        actor = None  # AnonymousUser or an unsaved user
    if school is None and actor is not None:
        school_id = actor.school_id
    else:
        school_id = getattr(school, "pk", school)
    if actor_username is None:
        actor_username = actor.get_username() if actor is not None else ""
    record = AuditEvent.objects.create(
        event=event,
        actor=actor,
        actor_username=str(actor_username)[:USERNAME_MAX],
        school_id=school_id,
        ip=client_ip(request),
        detail=detail,
    )
    logger.info(
        "Audit %s: user=%s school=%s ip=%s",
        event,
        actor.pk if actor is not None else "-",
        school_id or "-",
        record.ip or "-",
    )
    return record


@transaction.atomic
def audit_purge(*, older_than_days: int) -> int:
    """Delete the events older than `older_than_days`; refuses to go under six months."""
    if older_than_days < AUDIT_RETENTION_MIN_DAYS:
        raise ValueError(
            f"Audit events are kept at least {AUDIT_RETENTION_MIN_DAYS} days "
            f"(asked: {older_than_days})."
        )
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = AuditEvent.objects.filter(at__lt=cutoff).delete()
    return deleted
