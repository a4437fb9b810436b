from django.apps import AppConfig


class LearningConfig(AppConfig):
    """The learning loop: teachers' edits -> a training run -> a candidate model version,
    evaluated against the active one, judged blind by a panel of teachers, promoted or rolled
    back from the admin; and the quality dashboard. Above `exports` (its dataset code builds
    the training data); the torch side (training, losses) lives in `worker`."""

    name = "learning"
    verbose_name = "Amélioration du modèle"

    def ready(self) -> None:
        # Registers the tasks with Celery, so that the services find them by name (they never
        # import the tasks).
        from . import tasks  # noqa: F401
