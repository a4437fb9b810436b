from django.apps import AppConfig


class WorkerConfig(AppConfig):
    """The generation worker: the model backends and the model's management commands
    (fetch_model, build_test_model, check_model). No models; above `generation`."""

    name = "worker"
    verbose_name = "Serveur de calcul"
