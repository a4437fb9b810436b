"""Every URL × every role × own / other teacher's / other school's object."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

MISSING = 999_999


def urls_for(world, assignment, term):
    student = assignment.school_class.students.first()
    args = [assignment.pk, term.pk]
    return {
        "class_page": ("get", reverse("classes:class_page", args=args), {}),
        "cell_update": (
            "post",
            reverse("classes:cell_update", args=[*args, student.pk, "average"]),
            {"value": "11"},
        ),
        "import_upload": ("get", reverse("classes:import_upload", args=args), {}),
        "import_confirm": ("post", reverse("classes:import_confirm", args=args), {}),
    }


# (role, which object) -> the views that must NOT answer 404.
ALLOWED = {
    ("teacher", "own"): {"class_page", "cell_update", "import_upload", "import_confirm"},
    ("head", "own"): {"class_page"},  # read-only view of a headed subject
}


@pytest.mark.parametrize("role", ["teacher", "other_teacher", "head", "admin", "foreign_teacher"])
@pytest.mark.parametrize("target", ["own", "other", "foreign"])
@pytest.mark.parametrize("view", ["class_page", "cell_update", "import_upload", "import_confirm"])
def test_permission_matrix(world, login, role, target, view):
    assignment, term = {
        "own": (world.assignment, world.term),
        "other": (world.other_assignment, world.term),
        "foreign": (world.foreign_assignment, world.foreign_term),
    }[target]
    method, url, data = urls_for(world, assignment, term)[view]
    client = login(getattr(world, role))
    response = getattr(client, method)(url, data)
    # `other` belongs to other_teacher: they are its owner.
    effective = ("teacher", "own") if (role, target) == ("other_teacher", "other") else None
    effective = effective or (
        ("teacher", "own") if (role, target) == ("foreign_teacher", "foreign") else (role, target)
    )
    if view in ALLOWED.get(effective, set()):
        assert response.status_code != 404, (role, target, view)
    else:
        assert response.status_code == 404, (role, target, view)


@pytest.mark.parametrize("view", ["class_page", "cell_update", "import_upload", "import_confirm"])
def test_missing_objects_are_404(world, login, view):
    client = login(world.teacher)
    method, url, data = urls_for(world, world.assignment, world.term)[view]
    missing_url = url.replace(f"/classes/{world.assignment.pk}/", f"/classes/{MISSING}/")
    assert getattr(client, method)(missing_url, data).status_code == 404
    # A term of another school's year with an own assignment: 404 as well.
    other_term_url = url.replace(
        f"/trimestre/{world.term.pk}/", f"/trimestre/{world.foreign_term.pk}/"
    )
    assert getattr(client, method)(other_term_url, data).status_code == 404


@pytest.mark.parametrize("view", ["class_page", "cell_update", "import_upload", "import_confirm"])
def test_anonymous_is_sent_to_login(world, client, view):
    method, url, data = urls_for(world, world.assignment, world.term)[view]
    response = getattr(client, method)(url, data)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_dashboard_requires_login(client):
    response = client.get(reverse("classes:dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_post_without_csrf_is_refused(world):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(world.teacher)
    method, url, data = urls_for(world, world.assignment, world.term)["cell_update"]
    assert client.post(url, data).status_code == 403


@pytest.mark.parametrize("role", ["teacher", "head"])
def test_teachers_cannot_open_the_admin(world, login, role):
    response = login(getattr(world, role)).get(reverse("admin:index"))
    assert response.status_code == 302  # to the admin login: not staff
