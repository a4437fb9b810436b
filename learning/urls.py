from django.urls import path

from . import evaluation_views

app_name = "learning"

# Mounted under apprentissage/ (appreciation_site/urls.py).
urlpatterns = [
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
