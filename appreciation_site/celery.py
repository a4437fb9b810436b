"""The Celery app. Generation tasks go to the `gpu` queue (see CELERY_TASK_ROUTES)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appreciation_site.settings.local")

app = Celery("appreciation_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
