from django.urls import path

from . import views

app_name = "generation"

CLASS = "classes/<int:assignment_pk>/trimestre/<int:term_pk>/"

urlpatterns = [
    path(f"{CLASS}appreciations/", views.review_page, name="review"),
    path(f"{CLASS}appreciations/generer/", views.job_start, name="job_start"),
    path(
        f"{CLASS}appreciations/eleve/<int:student_pk>/valider/",
        views.appreciation_validate,
        name="validate",
    ),
    path(
        f"{CLASS}appreciations/eleve/<int:student_pk>/garder-mon-texte/",
        views.offer_dismiss,
        name="offer_dismiss",
    ),
    path("generations/<int:job_pk>/progression/", views.job_progress, name="job_progress"),
    path("generations/<int:job_pk>/annuler/", views.job_cancel, name="job_cancel"),
    path("generations/<int:job_pk>/reessayer/", views.job_retry, name="job_retry"),
    path("retours/<int:feedback_pk>/", views.feedback_rate, name="feedback_rate"),
    path("relecture/", views.head_queue, name="head_queue"),
    path(f"relecture/{CLASS}", views.head_review, name="head_review"),
    path(f"relecture/{CLASS}tout-approuver/", views.approve_all, name="approve_all"),
    path(
        "relecture/appreciations/<int:appreciation_pk>/approuver/",
        views.appreciation_approve,
        name="approve",
    ),
    path(
        "relecture/appreciations/<int:appreciation_pk>/renvoyer/",
        views.appreciation_return,
        name="return",
    ),
    path("brouillon-rapide/", views.quick_draft, name="quick_draft"),
    path("brouillon-rapide/<int:quick_pk>/", views.quick_draft_result, name="quick_draft_result"),
]
