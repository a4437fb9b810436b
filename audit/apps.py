from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Journal de sécurité"

    def ready(self) -> None:
        from . import signals

        signals.connect()
