from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    """Students' personal data (GDPR): export, erasure, the year's purge. No models: it sits
    above `classes` and `generation`, whose rows it reads and deletes."""

    name = "privacy"
    verbose_name = "Données personnelles"
