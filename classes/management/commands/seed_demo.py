from django.core.management.base import BaseCommand

from classes.demo import seed_demo


class Command(BaseCommand):
    help = (
        "Crée l'établissement de démonstration (deux classes de 30 élèves) et affiche les logins."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Ne rien faire si la base contient déjà un établissement.",
        )

    def handle(self, *args, **options):
        from classes.demo import DEMO_SCHOOL_NAME
        from classes.models import School

        schools = School.objects.all()
        if (
            options["if_empty"]
            and schools.exists()
            and not schools.filter(name=DEMO_SCHOOL_NAME).exists()
        ):
            self.stdout.write("Base déjà initialisée : établissement de démonstration non créé.")
            return
        result = seed_demo()
        if result.created:
            self.stdout.write(self.style.SUCCESS(f"Établissement créé : {result.school}"))
        else:
            self.stdout.write(f"L'établissement de démonstration existe déjà : {result.school}")
        labels = {
            "teacher": "Enseignante",
            "department_head": "Responsable de discipline (HG)",
            "school_admin": "Administratrice (via /admin/)",
        }
        self.stdout.write(f"Comptes de démonstration (mot de passe commun : {result.password})")
        for role, username in result.logins.items():
            self.stdout.write(f"  {labels[role]:<32} {username}")
