from django.db import migrations, models


class Migration(migrations.Migration):
    # The lead fixes this dependency at merge (the branches add 0003-0005 in between).
    dependencies = [
        ("classes", "0005_student_gepi_login"),
    ]

    operations = [
        migrations.AddField(
            model_name="school",
            name="city",
            field=models.CharField(blank=True, max_length=120, verbose_name="commune"),
        ),
    ]
