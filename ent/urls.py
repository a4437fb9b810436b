from django.urls import path

from . import views

urlpatterns = [
    path("connexion/ent/<int:school_id>/", views.ent_login, name="ent_login"),
]
