"""The authentication backend of ENT sign-ins (CAS), one CAS server per school."""

from __future__ import annotations

from django_cas_ng.backends import CASBackend

from classes.models import School

from .services import EntOutcome, ent_authenticate


class SchoolCASBackend(CASBackend):
    """django-cas-ng's CASBackend with the school's CAS server instead of CAS_SERVER_URL.

    CASBackend.authenticate() builds its client from the global settings (get_cas_client) and
    finds users by CAS_USERNAME_ATTRIBUTE across all schools, creating them when
    CAS_CREATE_USER is on: it is replaced by ent.services.ent_authenticate, which validates
    the ticket with the school's own server and matches a teacher of that school only. The
    rest (get_user, permissions) is Django's ModelBackend, which CASBackend extends.

    The arguments are keyword-only and have no **kwargs: a password login
    (authenticate(username=..., password=...)) never reaches this backend. The ENT view calls
    ent_authenticate() itself and logs the teacher in with this backend, rather than going
    through django.contrib.auth.authenticate(): django-axes would count a refused ticket as a
    failure of the (no username, address) pair and, after five, lock every ENT sign-in from a
    school's shared address. A ticket is a one-time random value checked by the ENT, which
    throttles its own password form: there is nothing to guess here.
    """

    #: Recorded as the sign-in method in the audit log (audit.signals.on_logged_in).
    login_method = "ent"

    def authenticate(self, request, *, cas_school: School, cas_ticket: str, cas_service: str):
        outcome: EntOutcome = ent_authenticate(
            school=cas_school, ticket=cas_ticket, service=cas_service
        )
        if request is not None:
            request.ent_outcome = outcome
        return outcome.teacher
