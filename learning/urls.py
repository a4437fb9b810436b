from django.urls import path

from . import dashboard_views, evaluation_views, panel_views, training_views

app_name = "learning"

# Mounted under apprentissage/ (appreciation_site/urls.py).
urlpatterns = [
    # The teachers' panel and the quality dashboard.
    path("panel/", panel_views.panel_page, name="panel"),
    path("panel/paires/<int:item_pk>/juger/", panel_views.panel_judge, name="panel_judge"),
    path("panel/resultats/", panel_views.panel_results_page, name="panel_results"),
    path("qualite/", dashboard_views.dashboard_page, name="dashboard"),
    # Training runs (superusers).
    path("entrainements/", training_views.training_page, name="training"),
    path("entrainements/lancer/", training_views.training_run_start, name="training_start"),
    path("entrainements/suivi/", training_views.training_runs, name="training_runs"),
    path(
        "entrainements/<int:run_pk>/annuler/",
        training_views.training_run_cancel,
        name="training_cancel",
    ),
    # The evaluation of a model version (superusers).
    path("evaluations/", evaluation_views.evaluation_list, name="evaluations"),
    path("evaluations/lancer/", evaluation_views.evaluation_start, name="evaluation_start"),
    path("evaluations/<int:evaluation_pk>/", evaluation_views.evaluation_detail, name="evaluation"),
    path(
        "versions/<int:version_pk>/evaluation/",
        evaluation_views.version_evaluation,
        name="version_evaluation",
    ),
]
