"""The admin keeps schools and roles apart: filters, accounts with more power, 404s."""

import pytest
from django.urls import reverse

from classes.models import Teacher
from tests.factories import PASSWORD, SchoolClassFactory, SubjectFactory, TeacherFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(world):
    return TeacherFactory(
        school=world.school, is_staff=True, is_superuser=True, role=Teacher.Role.SCHOOL_ADMIN
    )


@pytest.fixture
def other_admin(world):
    return TeacherFactory(school=world.school, is_staff=True, role=Teacher.Role.SCHOOL_ADMIN)


@pytest.mark.parametrize(
    "model", ["student", "teachingassignment", "termassessment", "schoolclass", "term"]
)
def test_filters_list_nothing_of_another_school(world, login, model):
    foreign_class = SchoolClassFactory(
        school=world.foreign_assignment.school_class.school,
        school_year=world.foreign_term.school_year,
        name="Classe-Étrangère-XYZ",
    )
    SubjectFactory(name="Matière-Étrangère-XYZ", school=foreign_class.school)
    client = login(world.admin)
    page = client.get(reverse(f"admin:classes_{model}_changelist")).content.decode()
    assert "Classe-Étrangère-XYZ" not in page
    assert "Matière-Étrangère-XYZ" not in page
    assert f"school_class__id__exact={world.foreign_assignment.school_class_id}" not in page
    assert f"term__id__exact={world.foreign_term.pk}" not in page


def test_a_superuser_still_filters_everything(world, login, superuser):
    client = login(superuser)
    page = client.get(reverse("admin:classes_student_changelist")).content.decode()
    assert f"school_class__id__exact={world.foreign_assignment.school_class_id}" in page


@pytest.mark.parametrize("target", ["superuser", "other_admin"])
@pytest.mark.parametrize("page", ["change", "password_change", "delete", "history"])
def test_a_school_admin_cannot_open_a_more_powerful_account(world, login, request, target, page):
    account = request.getfixturevalue(target)
    client = login(world.admin)
    name = (
        "admin:auth_user_password_change"
        if page == "password_change"
        else (f"admin:classes_teacher_{page}")
    )
    url = reverse(name, args=[account.pk])
    assert client.get(url).status_code == 404
    if page == "password_change":
        response = client.post(
            url,
            {
                "usable_password": "true",
                "password1": "Pris-en-main-2026!",
                "password2": "Pris-en-main-2026!",
            },
        )
        assert response.status_code == 404
        account.refresh_from_db()
        assert account.check_password(PASSWORD)
    listing = client.get(reverse("admin:classes_teacher_changelist")).content.decode()
    assert account.username not in listing


def test_a_school_admin_cannot_raise_an_account(world, login):
    client = login(world.admin)
    url = reverse("admin:classes_teacher_change", args=[world.teacher.pk])
    form = client.get(url).content.decode()
    assert 'value="school_admin"' not in form  # no role above their own to give
    response = client.post(
        url,
        {
            "username": world.teacher.username,
            "last_name": world.teacher.last_name,
            "first_name": world.teacher.first_name,
            "email": "",
            "school": world.foreign_assignment.school_class.school_id,
            "role": "school_admin",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
        },
    )
    world.teacher.refresh_from_db()
    assert response.status_code == 200  # the form refuses the role
    assert world.teacher.role == Teacher.Role.TEACHER
    assert not world.teacher.is_staff and not world.teacher.is_superuser
    assert world.teacher.school == world.school
    response = client.post(
        url,
        {
            "username": world.teacher.username,
            "last_name": "Renommée",
            "first_name": world.teacher.first_name,
            "email": "",
            "school": world.school.pk,
            "role": "department_head",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    world.teacher.refresh_from_db()
    assert world.teacher.last_name == "Renommée"
    assert world.teacher.role == Teacher.Role.DEPARTMENT_HEAD  # a role they may give
    assert not world.teacher.is_staff and not world.teacher.is_superuser
    assert world.teacher.school == world.school


def test_a_school_admin_cannot_change_their_own_role_or_school(world, login):
    client = login(world.admin)
    url = reverse("admin:classes_teacher_change", args=[world.admin.pk])
    assert client.get(url).status_code == 200
    client.post(
        url,
        {
            "username": world.admin.username,
            "last_name": "Admin",
            "first_name": "Moi",
            "email": "",
            "school": world.foreign_assignment.school_class.school_id,
            "role": "teacher",
        },
    )
    world.admin.refresh_from_db()
    assert world.admin.role == Teacher.Role.SCHOOL_ADMIN
    assert world.admin.school == world.school
    assert world.admin.is_staff and world.admin.is_active


def test_another_schools_rows_are_404_in_every_admin_view(world, login):
    client = login(world.admin)
    foreign_class = world.foreign_assignment.school_class
    for view in ("change", "delete", "history"):
        url = reverse(f"admin:classes_schoolclass_{view}", args=[foreign_class.pk])
        assert client.get(url).status_code == 404, view
