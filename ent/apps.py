from django.apps import AppConfig


class EntConfig(AppConfig):
    name = "ent"
    verbose_name = "Connexion par l'ENT"
