"""Say whether the configured model is on this machine, without loading it (`make run`)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from generation.backends import ModelAvailability

INSTALL_HINT = (
    "Installez-le une fois (environ 6,5 Go) : .venv/bin/python manage.py fetch_model ;"
    " ou essayez la plateforme hors ligne sur un petit modèle de test aléatoire :"
    " APPRECIATION_TEST_MODEL=1 make run"
)


class Command(BaseCommand):
    help = (
        "Check, offline and without loading it, that the configured base model and adapter are"
        " present (local folders or the Hugging Face cache): the check a worker runs at start."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fail",
            action="store_true",
            help="Exit with status 1 when the model is missing (health checks, scripts).",
        )

    def handle(self, *args, fail: bool, **options) -> None:
        availability = check_configured_model()
        if settings.APPRECIATION_BACKEND == OPENAI_BACKEND:
            self._report_servers(availability)
        elif availability.available:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Modèle : présent ({settings.APPRECIATION_BASE_MODEL} +"
                    f" {settings.APPRECIATION_ADAPTER}), vérifié en"
                    f" {availability.seconds * 1000:.0f} ms sans le charger."
                )
            )
        else:
            self.stdout.write(
                self.style.WARNING(
                    "Modèle : ABSENT. Le serveur de calcul ne pourra pas rédiger d'appréciations."
                )
            )
            for reason in availability.missing:
                self.stdout.write(f"  - {reason}")
            self.stdout.write(INSTALL_HINT)
        self._report_grammar()
        if fail and not availability.available:
            raise SystemExit(1)

    def _report_servers(self, availability: ModelAvailability) -> None:
        """The inference-server backend: its servers asked (GET /models), nothing to install
        on this machine."""
        servers = ", ".join(settings.APPRECIATION_INFERENCE_SERVERS) or "aucun"
        model = settings.APPRECIATION_INFERENCE_MODEL
        if availability.available:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Serveur d'inférence : joignable ({servers}), il sert {model} ; vérifié en"
                    f" {availability.seconds * 1000:.0f} ms."
                )
            )
            return
        self.stdout.write(
            self.style.WARNING(
                f"Serveur d'inférence : INDISPONIBLE ({servers}). Le serveur de calcul ne pourra"
                " pas rédiger d'appréciations."
            )
        )
        for reason in availability.missing:
            self.stdout.write(f"  - {reason}")
        self.stdout.write(
            "Démarrez le serveur d'inférence (README, « Serveur d'inférence compatible OpenAI »)"
            " ou corrigez APPRECIATION_INFERENCE_SERVERS et APPRECIATION_INFERENCE_MODEL."
        )

    def _report_grammar(self) -> None:
        """Grammalecte is loaded here (under a second): this process checks texts as the
        web server and the workers do. Its absence never fails the command: texts are then
        drafted and validated without the grammar check."""
        from generation import grammar

        status = grammar.status()
        if status.available:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Correcteur grammatical : disponible ({status.detail}),"
                    f" chargé en {status.load_seconds * 1000:.0f} ms."
                )
            )
            return
        self.stdout.write(
            self.style.WARNING(
                "Correcteur grammatical : INDISPONIBLE. Les textes ne sont pas vérifiés pour"
                f" la grammaire, l'orthographe et la typographie ({status.detail})."
            )
        )
        self.stdout.write(
            "Installez le paquet Debian python3-grammalecte (apt-get install"
            " python3-grammalecte), ou indiquez son dossier dans GRAMMALECTE_PATH."
        )


def check_configured_model() -> ModelAvailability:
    """The configured backend's own check. The transformers backend's is run from its
    torch-free module: importing the backend would import torch (about 1.5 s) for nothing."""
    from generation.backends import get_backend

    if settings.APPRECIATION_BACKEND == TRANSFORMERS_BACKEND:
        from worker.model_files import check_model_files

        return check_model_files(
            base_model=settings.APPRECIATION_BASE_MODEL, adapter=settings.APPRECIATION_ADAPTER
        )
    return get_backend().check_available()


TRANSFORMERS_BACKEND = "worker.backends.transformers.TransformersBackend"
OPENAI_BACKEND = "worker.backends.openai.OpenAICompatibleBackend"
