from django.apps import AppConfig


class ExportsConfig(AppConfig):
    """What leaves the platform: report cards (CSV, Gepi, XLSX, PDF, the copy view) and the
    feedback dataset. No models: it reads `classes` and `generation`, above both."""

    name = "exports"
    verbose_name = "Exports"
