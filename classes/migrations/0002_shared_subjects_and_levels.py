from django.db import migrations

# The model card's subjects; school admins add their own in the admin.
SHARED_SUBJECTS = [
    ("Histoire-Géographie", "HG"),
    ("Histoire-Géographie-Géopolitique-Science-Politique", "HGGSP"),
]
LEVELS = [("2nde", "Seconde", 1), ("1ere", "Première", 2), ("Tle", "Terminale", 3)]


def create(apps, schema_editor):
    Subject = apps.get_model("classes", "Subject")
    Level = apps.get_model("classes", "Level")
    for name, short_name in SHARED_SUBJECTS:
        Subject.objects.get_or_create(school=None, name=name, defaults={"short_name": short_name})
    for code, name, order in LEVELS:
        Level.objects.get_or_create(code=code, defaults={"name": name, "order": order})


def remove(apps, schema_editor):
    apps.get_model("classes", "Subject").objects.filter(
        school=None, name__in=[name for name, _ in SHARED_SUBJECTS]
    ).delete()
    apps.get_model("classes", "Level").objects.filter(code__in=[c for c, _, _ in LEVELS]).delete()


class Migration(migrations.Migration):
    dependencies = [("classes", "0001_initial")]

    operations = [migrations.RunPython(create, remove)]
