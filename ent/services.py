"""Sign-in through a school's ENT over CAS: the school's own CAS server, its own teachers.

django-cas-ng builds its CAS client from one global CAS_SERVER_URL (django_cas_ng.utils.
get_cas_client), which its views and its backend call internally. Here every school has its own
ENT, so the client is built per sign-in from the school (`cas_client`): the same python-cas
client class and the same CAS_* settings as get_cas_client, only the server address comes from
School.cas_server_url, and the HTTP session has a timeout (python-cas sets none: a stalled
ENT would hold a web worker forever).

A ticket is validated against that school's server only, for the exact service address the
sign-in started with (the server refuses a ticket issued for another service and a ticket
validated before). The identity the ENT sends (the CAS user name or an attribute, per school)
is then matched to a teacher of that school only, on the field the school chose. Nobody is
ever created: an unknown identity is refused.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlencode
from xml.etree.ElementTree import ParseError

import requests
from cas import CASClient, CASClientBase
from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from classes.models import School, Teacher

logger = logging.getLogger(__name__)

# CAS 3.0 protocol: service tickets of up to 256 characters "SHOULD" be accepted.
TICKET_MAX_LENGTH = 256
IDENTITY_MAX_LENGTH = 254
# Printable ASCII, no space: every CAS server's tickets (ST-…); anything else is not sent on.
TICKET_RE = re.compile(rf"[!-~]{{1,{TICKET_MAX_LENGTH}}}")


class Refusal(StrEnum):
    """Why an ENT sign-in was refused (stored in the audit log, English)."""

    INVALID_TICKET = "invalid_ticket"  # unknown, expired, replayed or for another service
    SERVER_ERROR = "server_error"  # unreachable, timed out, or not a CAS answer
    NO_IDENTITY = "no_identity"  # the answer lacks the school's attribute
    UNKNOWN_USER = "unknown_user"  # no teacher of this school has that identity
    AMBIGUOUS = "ambiguous"  # several teachers of this school have it
    INACTIVE = "inactive"


@dataclass(frozen=True)
class EntOutcome:
    teacher: Teacher | None
    refusal: Refusal | None = None
    identity: str = ""


class _TimeoutSession(requests.Session):
    """A requests session whose calls time out (python-cas passes no timeout)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, **kwargs)


def server_url_of(school: School) -> str:
    """The school's CAS address with a trailing slash: python-cas joins `login` and
    `p3/serviceValidate` to it with urljoin, which drops a last segment without one."""
    url = school.cas_server_url
    return url if url.endswith("/") else url + "/"


def cas_client(*, school: School, service_url: str) -> CASClientBase:
    """django_cas_ng.utils.get_cas_client, with the school's server instead of the global one."""
    if not school.cas_server_url:
        raise ValueError(f"School {school.pk} has no CAS server")
    return CASClient(
        version=settings.CAS_VERSION,
        service_url=service_url,
        server_url=server_url_of(school),
        renew=False,
        proxy_callback=None,
        verify_ssl_certificate=settings.CAS_VERIFY_SSL_CERTIFICATE,
        session=_TimeoutSession(settings.ENT_CAS_TIMEOUT),
    )


def safe_next(*, request: HttpRequest, next_url: str | None) -> str:
    """`next` if it is a path on this site, else "" (no redirect to another site)."""
    if not next_url or len(next_url) > 2000 or not next_url.isprintable():
        return ""
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return ""
    return next_url


def service_url(*, request: HttpRequest, school: School, next_url: str) -> str:
    """The address the ENT sends the browser back to, with the ticket. The same string is
    sent when the ticket is validated: the CAS server checks that they are equal."""
    url = request.build_absolute_uri(reverse("ent_login", kwargs={"school_id": school.pk}))
    if next_url:
        url += "?" + urlencode({"next": next_url})
    return url


def login_url(*, school: School, service: str) -> str:
    """The ENT's sign-in page, which sends the browser back to `service` with a ticket."""
    return cas_client(school=school, service_url=service).get_login_url()


def _identity_values(*, school: School, user: str | None, attributes: dict | None) -> list[str]:
    if not school.cas_user_attribute:
        raw = [user]
    else:
        value = (attributes or {}).get(school.cas_user_attribute)
        raw = value if isinstance(value, list) else [value]
    values = []
    for item in raw:
        text = "" if item is None else str(item).strip()
        if text and len(text) <= IDENTITY_MAX_LENGTH and text not in values:
            values.append(text)
    return values


def match_teacher(*, school: School, values: list[str]) -> list[Teacher]:
    """The teachers of `school` whose chosen field equals one of `values` (email: any case)."""
    if not values:
        return []
    field = school.cas_match_field
    teachers = Teacher.objects.filter(school=school)
    if field == School.CasMatchField.EMAIL:
        matches = [t for v in values for t in teachers.filter(email__iexact=v)]
    elif field == School.CasMatchField.ENT_ID:
        matches = list(teachers.filter(ent_id__in=values))
    else:
        matches = list(teachers.filter(username__in=values))
    return list({t.pk: t for t in matches}.values())


def ent_authenticate(*, school: School, ticket: str, service: str) -> EntOutcome:
    """Validate `ticket` with the school's CAS server and find the teacher it names.

    Never creates an account; never returns a teacher of another school or an inactive one.
    """
    if not TICKET_RE.fullmatch(ticket or ""):
        return EntOutcome(None, Refusal.INVALID_TICKET)
    client = cas_client(school=school, service_url=service)
    try:
        user, attributes, _pgtiou = client.verify_ticket(ticket)
    except requests.RequestException as error:
        logger.warning("ENT CAS server of school %s unreachable: %s", school.pk, error)
        return EntOutcome(None, Refusal.SERVER_ERROR)
    except (ParseError, IndexError, AttributeError, ValueError) as error:
        logger.warning("ENT CAS server of school %s: not a CAS answer (%s)", school.pk, error)
        return EntOutcome(None, Refusal.SERVER_ERROR)
    if not user:
        # The server's authenticationFailure: INVALID_TICKET (unknown, expired, validated
        # before) or INVALID_SERVICE (issued for another address).
        return EntOutcome(None, Refusal.INVALID_TICKET)
    values = _identity_values(school=school, user=user, attributes=attributes)
    identity = values[0] if values else ""
    if not values:
        return EntOutcome(None, Refusal.NO_IDENTITY, identity=str(user)[:IDENTITY_MAX_LENGTH])
    matches = match_teacher(school=school, values=values)
    if not matches:
        return EntOutcome(None, Refusal.UNKNOWN_USER, identity=identity)
    if len(matches) > 1:
        return EntOutcome(None, Refusal.AMBIGUOUS, identity=identity)
    teacher = matches[0]
    if not teacher.is_active:
        return EntOutcome(None, Refusal.INACTIVE, identity=identity)
    return EntOutcome(teacher, None, identity=identity)
