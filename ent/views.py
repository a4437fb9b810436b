"""ENT sign-in (CAS) and the login page that offers it. Thin: the work is in services."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render, resolve_url
from django.views.decorators.cache import never_cache

from audit.models import AuditEvent
from audit.services import audit_record
from classes.models import School

from .services import Refusal, ent_authenticate, login_url, safe_next, service_url

BACKEND = "ent.backends.SchoolCASBackend"

REFUSAL_MESSAGES = {
    Refusal.UNKNOWN_USER: (
        "Votre compte n'existe pas encore sur la plateforme : demandez à l'administrateur "
        "de votre établissement."
    ),
    Refusal.AMBIGUOUS: (
        "Plusieurs comptes de votre établissement correspondent à votre identité ENT : "
        "demandez à l'administrateur de votre établissement de corriger les fiches."
    ),
    Refusal.INACTIVE: (
        "Votre compte est désactivé sur la plateforme : demandez à l'administrateur de "
        "votre établissement."
    ),
    Refusal.NO_IDENTITY: (
        "L'ENT n'a pas transmis l'information qui permet de retrouver votre compte : "
        "demandez à l'administrateur de votre établissement de vérifier le réglage de la "
        "connexion par l'ENT."
    ),
    Refusal.INVALID_TICKET: (
        "La connexion par l'ENT a échoué (ticket invalide, expiré ou déjà utilisé). "
        "Recommencez depuis la page de connexion."
    ),
    Refusal.SERVER_ERROR: (
        "Le serveur de connexion de l'ENT ne répond pas correctement. Réessayez plus tard ou "
        "connectez-vous avec votre mot de passe de la plateforme."
    ),
}


class LoginView(auth_views.LoginView):
    """Django's login page, with « Se connecter avec l'ENT » for each school that set it up."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["ent_schools"] = School.objects.exclude(cas_server_url="").only("pk", "name")
        return context


@never_cache
def ent_login(request: HttpRequest, school_id: int) -> HttpResponse:
    """GET without a ticket: off to the school's ENT. GET with the ENT's ticket: validated
    with that school's CAS server, then the matching teacher of that school is signed in."""
    school = get_object_or_404(School.objects.exclude(cas_server_url=""), pk=school_id)
    next_url = safe_next(request=request, next_url=request.GET.get("next"))
    ticket = request.GET.get("ticket")
    service = service_url(request=request, school=school, next_url=next_url)
    if not ticket:
        if request.user.is_authenticated:
            return HttpResponseRedirect(next_url or resolve_url(settings.LOGIN_REDIRECT_URL))
        return HttpResponseRedirect(login_url(school=school, service=service))
    outcome = ent_authenticate(school=school, ticket=ticket, service=service)
    if outcome.teacher is None:
        audit_record(
            event=AuditEvent.Event.LOGIN_FAILED,
            actor=None,
            actor_username=outcome.identity,
            request=request,
            school=school,
            method="ent",
            reason=str(outcome.refusal),
        )
        return render(
            request,
            "ent/refused.html",
            {"school": school, "message": REFUSAL_MESSAGES[outcome.refusal]},
            status=403,
        )
    login(request, outcome.teacher, backend=BACKEND)
    return HttpResponseRedirect(next_url or resolve_url(settings.LOGIN_REDIRECT_URL))
