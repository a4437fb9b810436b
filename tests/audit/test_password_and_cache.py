"""Password changes reach the audit log; pages with students' data are never cached."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_earlier_events(world):
    # The factories set each account's password after creating it: a change, rightly audited.
    AuditEvent.objects.all().delete()


def test_a_teacher_changing_their_password_is_audited(world, login):
    client = login(world.teacher)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "Une-phrase-de-passe-solide-2026",
            "new_password2": "Une-phrase-de-passe-solide-2026",
        },
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(event=AuditEvent.Event.PASSWORD_CHANGED)
    assert event.actor == world.teacher
    assert event.school_id == world.school.pk
    assert event.detail["target_id"] == world.teacher.pk
    assert event.detail["by_owner"] is True
    assert "password" not in str(event.detail).replace("password_change", "")


def test_an_admin_setting_a_password_is_audited(world, login):
    client = login(world.admin)
    url = reverse("admin:auth_user_password_change", args=[world.teacher.pk])
    response = client.post(
        url,
        {
            "usable_password": "true",
            "password1": "Une-autre-phrase-solide-2026",
            "password2": "Une-autre-phrase-solide-2026",
        },
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(event=AuditEvent.Event.PASSWORD_CHANGED)
    assert event.actor == world.admin
    assert event.detail["target_username"] == world.teacher.username
    assert event.detail["by_owner"] is False


def test_logging_in_is_not_a_password_change(world, client):
    assert (
        client.post(
            reverse("login"), {"username": world.teacher.username, "password": PASSWORD}
        ).status_code
        == 302
    )
    assert not AuditEvent.objects.filter(event=AuditEvent.Event.PASSWORD_CHANGED).exists()


def test_pages_of_a_signed_in_user_are_not_stored(world, login):
    client = login(world.teacher)
    for url in (
        reverse("classes:dashboard"),
        reverse("generation:review", args=[world.assignment.pk, world.term.pk]),
        reverse("exports:assignment_file", args=[world.assignment.pk, world.term.pk, "csv"]),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "no-store" in response.headers["Cache-Control"], url
