from django.urls import path

from . import views, views_import

app_name = "classes"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path(
        "classes/<int:assignment_pk>/trimestre/<int:term_pk>/",
        views.class_page,
        name="class_page",
    ),
    path(
        "classes/<int:assignment_pk>/trimestre/<int:term_pk>/eleve/<int:student_pk>/<str:field>/",
        views.cell_update,
        name="cell_update",
    ),
    path(
        "classes/<int:assignment_pk>/trimestre/<int:term_pk>/import/",
        views_import.import_upload,
        name="import_upload",
    ),
    path(
        "classes/<int:assignment_pk>/trimestre/<int:term_pk>/import/confirmer/",
        views_import.import_confirm,
        name="import_confirm",
    ),
]
