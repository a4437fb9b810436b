from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"
    verbose_name = "Génération et relecture"

    def ready(self) -> None:
        # Registers the tasks (and the worker_ready handler) with Celery, so that
        # `generation.queue` finds them by name: the services never import the tasks.
        from . import tasks  # noqa: F401
