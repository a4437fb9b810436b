"""The security audit log: who did what, when, from where.

Kept at least AUDIT_RETENTION_MIN_DAYS (six months, AI Act art. 26 and the CNIL's
recommendation for access logs): `audit.services.audit_purge` refuses to delete younger events,
and the admin deletes nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class AuditEvent(models.Model):
    class Event(models.TextChoices):
        LOGIN = "login", "Connexion"
        LOGIN_FAILED = "login_failed", "Échec de connexion"
        LOCKED_OUT = "locked_out", "Connexion bloquée (trop d'échecs)"
        LOGOUT = "logout", "Déconnexion"
        ROLE_CHANGED = "role_changed", "Changement de rôle ou de droits"
        PASSWORD_CHANGED = "password_changed", "Changement de mot de passe"
        EXPORT = "export", "Export des appréciations"
        DATASET_DOWNLOAD = "dataset_download", "Téléchargement du jeu de données"
        STUDENT_DATA_EXPORT = "student_data_export", "Export des données d'un élève"
        STUDENT_ERASED = "student_erased", "Effacement des données d'un élève"
        YEAR_PURGED = "year_purged", "Purge d'une année scolaire"
        # The shared model (issue 13, versions): who changed which adapter drafts for everyone.
        MODEL_VERSION_REGISTERED = "model_version_registered", "Nouvelle version du modèle"
        MODEL_VERSION_PROMOTED = "model_version_promoted", "Mise en service d'une version du modèle"
        MODEL_VERSION_ROLLED_BACK = "model_version_rolled_back", "Retour à la version précédente"
        TRAINING_OPT_IN_CHANGED = (
            "training_opt_in_changed",
            "Choix d'entraînement du modèle partagé modifié",
        )

    at = models.DateTimeField("date", auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="utilisateur",
    )
    # A snapshot: the event keeps its author's name after the account is deleted or renamed.
    # For a failed login, the username that was typed (the account may not exist).
    actor_username = models.CharField("identifiant", max_length=150, blank=True)
    school = models.ForeignKey(
        "classes.School",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="établissement",
    )
    event = models.CharField("événement", max_length=32, choices=Event.choices)
    ip = models.GenericIPAddressField("adresse IP", null=True, blank=True)
    detail = models.JSONField("détails", default=dict, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        verbose_name = "événement de sécurité"
        verbose_name_plural = "journal de sécurité"
        ordering = ["-at", "-pk"]
        indexes = [
            models.Index(fields=["school", "-at"], name="audit_school_at"),
            models.Index(fields=["event", "-at"], name="audit_event_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.event} {self.actor_username or '-'}"
