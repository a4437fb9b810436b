from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from classes.invitations import InvitationDoneView, InvitationView
from ent import views as ent_views

admin.site.site_header = "Appréciations — administration de l'établissement"
admin.site.site_title = "Appréciations"

urlpatterns = [
    # Django's login page, plus « Se connecter avec l'ENT » for the schools that set it up.
    path("connexion/", ent_views.LoginView.as_view(), name="login"),
    path("", include("ent.urls")),
    path("deconnexion/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "mot-de-passe/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "mot-de-passe/modifie/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path(
        "invitation/<uidb64>/<token>/",
        InvitationView.as_view(),
        name="teacher_invitation",
    ),
    path("invitation/termine/", InvitationDoneView.as_view(), name="teacher_invitation_done"),
    path("admin/", admin.site.urls),
    path("", include("generation.urls")),
    path("", include("exports.urls")),
    path("", include("classes.urls")),
    path("apprentissage/", include("learning.urls")),
]
