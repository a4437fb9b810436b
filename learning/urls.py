from django.urls import path

from . import training_views

app_name = "learning"

urlpatterns = [
    # Training runs (superusers).
    path("entrainements/", training_views.training_page, name="training"),
    path("entrainements/lancer/", training_views.training_run_start, name="training_start"),
    path("entrainements/suivi/", training_views.training_runs, name="training_runs"),
    path(
        "entrainements/<int:run_pk>/annuler/",
        training_views.training_run_cancel,
        name="training_cancel",
    ),
]
