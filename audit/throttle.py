"""A per-address limit on failed logins, beside django-axes' per-(account, address) lock.

axes applies one failure limit to every lockout parameter, and a school's teachers often share
one public address: locking an address after axes' 5 failures would lock a whole school. So
the address gets its own, higher limit, counted from the audit log's own failure events
(one row per failure, with the address): nothing new to store, and the same client address as
axes (audit.ip.client_ip). It is an authentication backend, first in the list, so that every
login form (the teachers' and the admin's) goes through it, and axes' middleware shows its
lockout page (HTTP 429) when it refuses.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from .ip import client_ip
from .models import AuditEvent


def address_locked(request) -> bool:
    ip = client_ip(request)
    if ip is None:
        return False
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    # Refused ENT sign-ins (an account not created yet, a stale ticket) are logged as failures
    # too, but guess no password: they never lock a school's shared address.
    # (Two counts: exclude() on a JSON key also drops the rows without that key.)
    failed = AuditEvent.objects.filter(event=AuditEvent.Event.LOGIN_FAILED, ip=ip, at__gte=since)
    failures = failed.count() - failed.filter(detail__method="ent").count()
    return failures >= settings.LOGIN_FAILURES_PER_ADDRESS


class AddressThrottleBackend:
    """Refuses every login from an address with too many recent failures (any account)."""

    def authenticate(self, request, **credentials):
        if request is not None and address_locked(request):
            request.axes_locked_out = True  # axes' middleware answers with its lockout page
            raise PermissionDenied("Too many failed logins from this address.")
        return None

    # No get_user(): like axes' backend, this one never signs anybody in, so Django (and the
    # test client's force_login) never picks it as a session's backend.
