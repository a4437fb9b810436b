import pytest
from django.core.management import call_command

from classes.demo import DEMO_LOGINS, DEMO_PASSWORD
from classes.models import School, SchoolClass, Student, Teacher, TermAssessment

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_school_and_prints_logins(capsys, client):
    call_command("seed_demo")
    out = capsys.readouterr().out
    for username in DEMO_LOGINS.values():
        assert username in out
    assert DEMO_PASSWORD in out
    school = School.objects.get()
    classes = SchoolClass.objects.filter(school=school)
    assert classes.count() == 2
    for school_class in classes:
        assert school_class.students.count() == 30
    # Trimesters 1 and 2 filled, 3 empty.
    assert set(TermAssessment.objects.values_list("term__number", flat=True)) == {1, 2}
    assert TermAssessment.objects.count() == 2 * 30 * 2
    roles = set(Teacher.objects.values_list("role", flat=True))
    assert roles == {"teacher", "department_head", "school_admin"}
    # The demo teacher logs in and sees the two classes.
    assert client.login(username=DEMO_LOGINS["teacher"], password=DEMO_PASSWORD)
    body = client.get("/").content.decode()
    assert "2nde 3" in body and "1ère 2" in body


def test_seed_demo_twice_changes_nothing():
    call_command("seed_demo")
    counts = (School.objects.count(), Student.objects.count(), TermAssessment.objects.count())
    call_command("seed_demo")
    call_command("seed_demo", "--if-empty")
    assert (
        School.objects.count(),
        Student.objects.count(),
        TermAssessment.objects.count(),
    ) == counts


def test_seed_demo_if_empty_leaves_a_real_school_alone(capsys):
    School.objects.create(name="Lycée réel")
    call_command("seed_demo", "--if-empty")
    assert School.objects.count() == 1
    assert "non créé" in capsys.readouterr().out


def test_every_demo_student_has_a_gepi_login_so_the_gepi_export_is_complete():
    from classes.text import is_gepi_login

    call_command("seed_demo")
    for school_class in SchoolClass.objects.all():
        logins = [s.gepi_login for s in school_class.students.all()]
        assert all(is_gepi_login(login) for login in logins)
        assert len(set(logins)) == len(logins)
