"""Who may reach a training run: superusers only; the same 404 for missing and forbidden."""

from __future__ import annotations

from django.http import Http404

from .models import TrainingRun


def require_superuser(user) -> None:
    if not (user.is_authenticated and user.is_superuser):
        raise Http404("Not found")


def access_training_run_by_id(user, run_id: int) -> TrainingRun:
    require_superuser(user)
    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None:
        raise Http404("Not found")
    return run
