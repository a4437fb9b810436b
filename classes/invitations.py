"""Invitations: a new account (imported from STS-web) has no usable password; a link made with
Django's password-reset tokens lets its owner choose one.

The token depends on the account's password hash and last login: it stops working once used,
and after PASSWORD_RESET_TIMEOUT (three days by default). An admin makes a new one at any time
(« Liens d'invitation » on the teachers' list).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.http import HttpRequest
from django.urls import reverse, reverse_lazy
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from .models import Teacher


def invitation_path(teacher: Teacher) -> str:
    uid = urlsafe_base64_encode(force_bytes(teacher.pk))
    token = default_token_generator.make_token(teacher)
    return reverse("teacher_invitation", args=[uid, token])


def invitation_url(request: HttpRequest, teacher: Teacher) -> str:
    return request.build_absolute_uri(invitation_path(teacher))


def invitation_days() -> int:
    return max(1, settings.PASSWORD_RESET_TIMEOUT // (24 * 3600))


def send_invitation(request: HttpRequest, teacher: Teacher) -> bool:
    """Email the link to the teacher; False when the account has no address."""
    if not teacher.email:
        return False
    school = teacher.school.name if teacher.school_id else "votre établissement"
    send_mail(
        subject="Appréciations : votre compte",
        message=(
            f"Bonjour {teacher.first_name} {teacher.last_name},\n\n"
            f"Un compte a été ouvert pour vous sur la plateforme des appréciations ({school}).\n"
            f"Votre identifiant : {teacher.username}\n"
            f"Choisissez votre mot de passe en suivant ce lien (valable {invitation_days()} "
            f"jours, une seule fois) :\n{invitation_url(request, teacher)}\n"
        ),
        from_email=None,
        recipient_list=[teacher.email],
    )
    return True


class InvitationView(auth_views.PasswordResetConfirmView):
    """The page the link opens: choose a password (Django's password validators apply)."""

    template_name = "registration/invitation_form.html"
    success_url = reverse_lazy("teacher_invitation_done")


class InvitationDoneView(auth_views.PasswordResetCompleteView):
    template_name = "registration/invitation_done.html"
