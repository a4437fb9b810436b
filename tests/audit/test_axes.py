"""Login throttling: the (username, IP) pair is locked, never a whole school's address."""

from datetime import timedelta

import pytest
from axes.backends import AxesStandaloneBackend
from axes.models import AccessAttempt
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from audit.models import AuditEvent
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

SCHOOL_NAT = "203.0.113.5"
HOME = "198.51.100.23"
LOCKED_MESSAGE = "Trop de tentatives de connexion échouées"


def attempt(client, username, password, ip=SCHOOL_NAT):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def lock(client, username, ip=SCHOOL_NAT):
    return [attempt(client, username, f"wrong-{n}", ip) for n in range(5)]


def test_settings_lock_the_pair_for_fifteen_minutes():
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 15 * 60
    assert issubclass(import_string(settings.AUTHENTICATION_BACKENDS[0]), AxesStandaloneBackend)
    assert settings.AUTHENTICATION_BACKENDS[1] == "audit.throttle.AddressThrottleBackend"


def test_production_settings_use_the_real_axes_backend():
    from appreciation_site.settings import base

    assert base.AUTHENTICATION_BACKENDS[:2] == [
        "axes.backends.AxesStandaloneBackend",
        "audit.throttle.AddressThrottleBackend",
    ]


def test_five_failures_lock_the_teacher_on_that_address(world, client):
    responses = lock(client, world.teacher.username)
    assert [r.status_code for r in responses[:4]] == [200] * 4  # the form, with its error
    assert responses[4].status_code == 429
    assert LOCKED_MESSAGE in responses[4].content.decode()
    # The right password is refused while locked, with the French page.
    response = attempt(client, world.teacher.username, PASSWORD)
    assert response.status_code == 429
    body = response.content.decode()
    assert LOCKED_MESSAGE in body
    assert "15 minutes" in body
    assert "_auth_user_id" not in client.session


def test_a_colleague_behind_the_same_address_still_logs_in(world, client):
    lock(client, world.teacher.username)
    response = attempt(client, world.other_teacher.username, PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == reverse("classes:dashboard")
    assert int(client.session["_auth_user_id"]) == world.other_teacher.pk


def test_the_locked_teacher_still_logs_in_from_another_address(world, client):
    lock(client, world.teacher.username)
    response = attempt(client, world.teacher.username, PASSWORD, ip=HOME)
    assert response.status_code == 302


def test_the_lock_ends_after_the_cool_off(world, client):
    lock(client, world.teacher.username)
    for access in AccessAttempt.objects.all():
        access.attempt_time -= timedelta(minutes=16)
        access.save()
    response = attempt(client, world.teacher.username, PASSWORD)
    assert response.status_code == 302


def test_four_failures_then_success_reset_the_count(world, client):
    for n in range(4):
        attempt(client, world.teacher.username, f"wrong-{n}")
    assert attempt(client, world.teacher.username, PASSWORD).status_code == 302
    client.logout()
    for n in range(4):
        assert attempt(client, world.teacher.username, f"wrong-again-{n}").status_code == 200


def test_lockout_is_in_the_audit_log(world, client):
    lock(client, world.teacher.username)
    locked = AuditEvent.objects.filter(event=AuditEvent.Event.LOCKED_OUT).get()
    assert locked.actor_username == world.teacher.username
    assert locked.ip == SCHOOL_NAT
    assert locked.school == world.school
    assert AuditEvent.objects.filter(event=AuditEvent.Event.LOGIN_FAILED).count() == 5


def test_the_admin_login_is_throttled_too(world, client):
    url = reverse("admin:login")
    for n in range(5):
        response = client.post(
            url, {"username": world.admin.username, "password": f"wrong-{n}"}, REMOTE_ADDR=HOME
        )
    assert response.status_code == 429


def test_password_spraying_from_one_address_locks_that_address(world, client):
    """28 tries over 7 accounts (4 each, under axes' 5) used to lock nothing."""
    from tests.factories import TeacherFactory

    accounts = [TeacherFactory(school=world.school) for _ in range(7)]
    statuses = [
        attempt(client, account.username, f"spray-{n}").status_code
        for n in range(4)
        for account in accounts
    ]
    limit = settings.LOGIN_FAILURES_PER_ADDRESS
    assert limit < 28
    assert statuses[:limit] == [200] * limit  # the form again, wrong password
    assert set(statuses[limit:]) == {429}
    # The address is locked for every account, even with the right password...
    response = attempt(client, world.teacher.username, PASSWORD)
    assert response.status_code == 429 and LOCKED_MESSAGE in response.content.decode()
    # ... the admin's login form too; another address is not.
    response = client.post(
        reverse("admin:login"),
        {"username": world.admin.username, "password": PASSWORD},
        REMOTE_ADDR=SCHOOL_NAT,
    )
    assert response.status_code == 429
    assert attempt(client, world.teacher.username, PASSWORD, ip=HOME).status_code == 302


def test_the_address_lock_ends_after_the_cool_off(world, client):
    from tests.factories import TeacherFactory

    accounts = [TeacherFactory(school=world.school) for _ in range(5)]
    for n in range(4):
        for account in accounts:
            attempt(client, account.username, f"spray-{n}")
    assert attempt(client, world.teacher.username, PASSWORD).status_code == 429
    AuditEvent.objects.update(at=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert attempt(client, world.teacher.username, PASSWORD).status_code == 302
