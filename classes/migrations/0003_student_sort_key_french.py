"""Students sort in French order (classes.collation): the key, filled for existing students."""

from django.db import migrations, models

from classes.collation import student_sort_key


def fill_sort_keys(apps, schema_editor):
    Student = apps.get_model("classes", "Student")
    students = list(Student.objects.only("pk", "last_name", "first_name"))
    for student in students:
        student.sort_key = student_sort_key(student.last_name, student.first_name)
    Student.objects.bulk_update(students, ["sort_key"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("classes", "0002_shared_subjects_and_levels"),
    ]

    operations = [
        migrations.AddField(
            model_name="student",
            name="sort_key",
            field=models.BinaryField(default=b"", editable=False, verbose_name="clé de tri"),
        ),
        migrations.RunPython(fill_sort_keys, migrations.RunPython.noop, elidable=True),
        migrations.AlterModelOptions(
            name="student",
            options={"ordering": ["sort_key", "pk"], "verbose_name": "élève"},
        ),
    ]
