from django.urls import path

from . import views

app_name = "exports"

# One class × subject × term (the assignment, like the review pages) and one whole class.
ASSIGNMENT = "classes/<int:assignment_pk>/trimestre/<int:term_pk>/export/"
WHOLE_CLASS = "bulletins/classe/<int:class_pk>/trimestre/<int:term_pk>/"

urlpatterns = [
    path("exports/", views.export_index, name="index"),
    path(ASSIGNMENT, views.assignment_page, name="assignment"),
    path(f"{ASSIGNMENT}copier/", views.assignment_copy, name="assignment_copy"),
    path(f"{ASSIGNMENT}<slug:fmt>/", views.assignment_file, name="assignment_file"),
    path(WHOLE_CLASS, views.class_page, name="class"),
    path(f"{WHOLE_CLASS}copier/", views.class_copy, name="class_copy"),
    path(f"{WHOLE_CLASS}<slug:fmt>/", views.class_file, name="class_file"),
    path("exports/jeu-de-donnees/<slug:fmt>/", views.dataset_file, name="dataset_file"),
]
