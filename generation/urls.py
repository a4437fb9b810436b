from django.urls import path

from .views import head, quick_draft, review

app_name = "generation"

CLASS = "classes/<int:assignment_pk>/trimestre/<int:term_pk>/"

urlpatterns = [
    path(f"{CLASS}appreciations/", review.review_page, name="review"),
    path(f"{CLASS}appreciations/generer/", review.job_start, name="job_start"),
    path(
        f"{CLASS}appreciations/eleve/<int:student_pk>/valider/",
        review.appreciation_validate,
        name="validate",
    ),
    path(
        f"{CLASS}appreciations/eleve/<int:student_pk>/garder-mon-texte/",
        review.offer_dismiss,
        name="offer_dismiss",
    ),
    path("generations/<int:job_pk>/progression/", review.job_progress, name="job_progress"),
    path("generations/<int:job_pk>/annuler/", review.job_cancel, name="job_cancel"),
    path("generations/<int:job_pk>/reessayer/", review.job_retry, name="job_retry"),
    path("retours/<int:feedback_pk>/", review.feedback_rate, name="feedback_rate"),
    path("relecture/", head.head_queue, name="head_queue"),
    path(f"relecture/{CLASS}", head.head_review, name="head_review"),
    path(f"relecture/{CLASS}tout-approuver/", head.approve_all, name="approve_all"),
    path(
        "relecture/appreciations/<int:appreciation_pk>/approuver/",
        head.appreciation_approve,
        name="approve",
    ),
    path(
        "relecture/appreciations/<int:appreciation_pk>/renvoyer/",
        head.appreciation_return,
        name="return",
    ),
    path("brouillon-rapide/", quick_draft.quick_draft, name="quick_draft"),
    path(
        "brouillon-rapide/<int:quick_pk>/",
        quick_draft.quick_draft_result,
        name="quick_draft_result",
    ),
]
