import pytest
from django.urls import reverse

from classes.models import Student, Teacher

pytestmark = pytest.mark.django_db


def test_school_admin_sees_only_their_school(world, login):
    client = login(world.admin)
    response = client.get(reverse("admin:classes_student_changelist"))
    assert response.status_code == 200
    own = Student.objects.filter(school_class__school=world.school).count()
    assert f"{own} élève" in response.content.decode()
    foreign_student = world.foreign_assignment.school_class.students.first()
    url = reverse("admin:classes_student_change", args=[foreign_student.pk])
    assert client.get(url).status_code == 404  # the same 404 as a missing object


def test_school_admin_creates_teacher_in_own_school(world, login):
    client = login(world.admin)
    response = client.post(
        reverse("admin:classes_teacher_add"),
        {
            "username": "nouveau.prof",
            "last_name": "Nouveau",
            "first_name": "Prof",
            "email": "",
            "school": world.foreign_assignment.school_class.school.pk,  # not allowed
            "role": "teacher",
            "usable_password": "true",
            "password1": "un-mot-de-passe-solide-2026",
            "password2": "un-mot-de-passe-solide-2026",
        },
    )
    assert response.status_code == 200  # form error: the foreign school is not a choice
    assert not Teacher.objects.filter(username="nouveau.prof").exists()
    response = client.post(
        reverse("admin:classes_teacher_add"),
        {
            "username": "nouveau.prof",
            "last_name": "Nouveau",
            "first_name": "Prof",
            "email": "",
            "school": world.school.pk,
            "role": "teacher",
            "usable_password": "true",
            "password1": "un-mot-de-passe-solide-2026",
            "password2": "un-mot-de-passe-solide-2026",
        },
    )
    assert response.status_code == 302
    assert Teacher.objects.get(username="nouveau.prof").school == world.school


def test_school_admin_cannot_grant_superuser(world, login):
    client = login(world.admin)
    url = reverse("admin:classes_teacher_change", args=[world.teacher.pk])
    assert "is_superuser" not in client.get(url).content.decode()
