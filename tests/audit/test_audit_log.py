"""The audit log records logins, failures, logouts and rights changes; the admin scopes it."""

from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import AUDIT_RETENTION_MIN_DAYS, audit_purge, audit_record
from classes.models import Teacher
from tests.factories import PASSWORD, TeacherFactory, shared_subject

pytestmark = pytest.mark.django_db

Event = AuditEvent.Event


def events(event, **filters):
    return AuditEvent.objects.filter(event=event, **filters)


def test_login_through_the_page_is_recorded_with_who_when_and_ip(world, client):
    before = timezone.now()
    response = client.post(
        reverse("login"),
        {"username": world.teacher.username, "password": PASSWORD},
        REMOTE_ADDR="192.0.2.10",
    )
    assert response.status_code == 302
    event = events(Event.LOGIN).get()
    assert event.actor == world.teacher
    assert event.actor_username == world.teacher.username
    assert event.school == world.school
    assert event.ip == "192.0.2.10"
    assert event.at >= before


def test_failed_login_keeps_the_username_never_the_password(world, client):
    response = client.post(
        reverse("login"),
        {"username": world.teacher.username, "password": "not-the-password-123"},
        REMOTE_ADDR="192.0.2.11",
    )
    assert response.status_code == 200
    event = events(Event.LOGIN_FAILED).get()
    assert event.actor is None
    assert event.actor_username == world.teacher.username
    assert event.school == world.school  # the school admin sees attempts on their teachers
    assert event.ip == "192.0.2.11"
    assert "not-the-password-123" not in str(event.detail)
    assert event.detail["username"] == world.teacher.username


def test_failed_login_on_unknown_account_has_no_school(db, client):
    client.post(reverse("login"), {"username": "personne", "password": "x"})
    event = events(Event.LOGIN_FAILED).get()
    assert event.school is None
    assert event.actor_username == "personne"


def test_hostile_username_is_stored_printable_and_truncated(db, rf):
    # The login form refuses such a username before authenticating; another caller may not.
    # (NUL is refused by the login form itself, and PostgreSQL rejects it in any query:
    # see test_nul_in_login_form_is_a_form_error.)
    # Under axes' 255-character column: longer usernames never pass the login form.
    hostile = "a\x07b\x1b[31m\u2028" + "x" * 200
    request = rf.post("/connexion/")
    assert authenticate(request, username=hostile, password="x") is None
    event = events(Event.LOGIN_FAILED).get()
    assert event.actor_username.startswith("ab[31m")
    assert len(event.actor_username) == 150
    assert all(ch.isprintable() for ch in event.detail["username"])


def test_logout_is_recorded(world, login):
    client = login(world.teacher)
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    event = events(Event.LOGOUT).get()
    assert event.actor == world.teacher


def test_role_change_in_the_admin_is_recorded_with_the_admin_as_actor(world, login):
    client = login(world.admin)
    target = world.teacher
    url = reverse("admin:classes_teacher_change", args=[target.pk])
    response = client.post(
        url,
        {
            "username": target.username,
            "last_name": target.last_name,
            "first_name": target.first_name,
            "email": "",
            "school": world.school.pk,
            "role": Teacher.Role.DEPARTMENT_HEAD,
            "headed_subjects": [shared_subject("HG").pk],
            "is_active": "on",
        },
        REMOTE_ADDR="192.0.2.20",
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    target.refresh_from_db()
    assert target.role == Teacher.Role.DEPARTMENT_HEAD
    changes = [e for e in events(Event.ROLE_CHANGED) if e.detail["target_id"] == target.pk]
    role_event = next(e for e in changes if "role" in e.detail["changes"])
    assert role_event.actor == world.admin
    assert role_event.ip == "192.0.2.20"
    assert role_event.school == world.school
    assert role_event.detail["changes"]["role"] == ["teacher", "department_head"]
    subjects_event = next(e for e in changes if "headed_subjects" in e.detail["changes"])
    added = subjects_event.detail["changes"]["headed_subjects"]["added"]
    assert [s["id"] for s in added] == [shared_subject("HG").pk]


def test_staff_and_superuser_flags_are_recorded_outside_a_request(world):
    world.teacher.is_superuser = True
    world.teacher.is_staff = True
    world.teacher.save()
    event = events(Event.ROLE_CHANGED, detail__target_id=world.teacher.pk).get()
    assert event.actor is None
    assert event.detail["changes"]["is_superuser"] == [False, True]
    assert event.detail["changes"]["is_staff"] == [False, True]


def test_headed_subjects_removed_from_either_side_are_recorded(world):
    subject = shared_subject("HG")
    subject.heads.remove(world.head)
    event = events(Event.ROLE_CHANGED, detail__target_id=world.head.pk).latest("pk")
    assert event.detail["changes"]["headed_subjects"]["removed"][0]["id"] == subject.pk
    world.head.headed_subjects.add(subject)
    world.head.headed_subjects.clear()
    latest = events(Event.ROLE_CHANGED, detail__target_id=world.head.pk).latest("pk")
    assert latest.detail["changes"]["headed_subjects"]["removed"][0]["id"] == subject.pk


def test_ordinary_saves_record_nothing(world, client):
    count = AuditEvent.objects.filter(event=Event.ROLE_CHANGED).count()
    world.teacher.first_name = "Autre"
    world.teacher.save()
    world.teacher.save(update_fields=["last_login"])
    TeacherFactory(school=world.school)  # a plain teacher account: no rights granted
    assert AuditEvent.objects.filter(event=Event.ROLE_CHANGED).count() == count


def test_creating_an_admin_account_is_recorded(world):
    created = TeacherFactory(school=world.school, role=Teacher.Role.SCHOOL_ADMIN, is_staff=True)
    event = events(Event.ROLE_CHANGED, detail__target_id=created.pk).get()
    assert event.detail["changes"]["created"] is True
    assert event.detail["changes"]["role"] == [None, "school_admin"]


def test_audit_record_defaults_to_the_request_user_and_school(world, rf):
    request = rf.get("/", REMOTE_ADDR="2001:db8::1")
    request.user = world.teacher
    event = audit_record(event=Event.EXPORT, request=request, kind="csv", count=3)
    assert event.actor == world.teacher
    assert event.school == world.school
    assert event.ip == "2001:db8::1"
    assert event.detail == {"kind": "csv", "count": 3}


def test_audit_record_refuses_an_unknown_event(db):
    with pytest.raises(ValueError):
        audit_record(event="made_up")


def test_forwarded_for_is_read_only_from_trusted_proxies(world, rf, settings):
    request = rf.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7")
    request.user = world.teacher
    settings.TRUSTED_PROXY_COUNT = 0
    assert audit_record(event=Event.EXPORT, request=request).ip == "10.0.0.1"
    settings.TRUSTED_PROXY_COUNT = 1
    assert audit_record(event=Event.EXPORT, request=request).ip == "198.51.100.7"
    request.META["HTTP_X_FORWARDED_FOR"] = "not an address"
    assert audit_record(event=Event.EXPORT, request=request).ip is None


def test_events_younger_than_six_months_are_never_purged(world):
    recent = audit_record(event=Event.EXPORT, actor=world.teacher)
    old = audit_record(event=Event.EXPORT, actor=world.teacher)
    AuditEvent.objects.filter(pk=old.pk).update(
        at=timezone.now() - timedelta(days=AUDIT_RETENTION_MIN_DAYS + 10)
    )
    with pytest.raises(ValueError):
        audit_purge(older_than_days=30)
    assert audit_purge(older_than_days=AUDIT_RETENTION_MIN_DAYS) == 1
    assert AuditEvent.objects.filter(pk=recent.pk).exists()
    assert not AuditEvent.objects.filter(pk=old.pk).exists()


# --- Admin -----------------------------------------------------------------------------------


def test_school_admin_sees_only_their_school_events_read_only(world, login):
    own = audit_record(event=Event.EXPORT, actor=world.teacher)
    foreign = audit_record(event=Event.EXPORT, actor=world.foreign_teacher)
    client = login(world.admin)
    changelist = client.get(reverse("admin:audit_auditevent_changelist"))
    assert changelist.status_code == 200
    ids = {event.pk for event in changelist.context["cl"].queryset}
    assert own.pk in ids
    assert foreign.pk not in ids
    view = client.get(reverse("admin:audit_auditevent_change", args=[own.pk]))
    assert view.status_code == 200
    assert 'name="_save"' not in view.content.decode()  # view only
    # Another school's event: the admin answers as for a missing object.
    other = client.get(reverse("admin:audit_auditevent_change", args=[foreign.pk]))
    assert other.status_code == 302
    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    assert client.post(reverse("admin:audit_auditevent_delete", args=[own.pk])).status_code == 403
    assert (
        client.post(
            reverse("admin:audit_auditevent_change", args=[own.pk]), {"event": "login"}
        ).status_code
        == 403
    )
    assert AuditEvent.objects.filter(pk=own.pk, event=Event.EXPORT).exists()


def test_teachers_and_heads_cannot_read_the_log(world, login):
    for user in (world.teacher, world.head):
        response = login(user).get(reverse("admin:audit_auditevent_changelist"))
        assert response.status_code == 302  # to the admin login: not staff


def test_staff_without_the_admin_role_cannot_read_the_log(world, login):
    staff = TeacherFactory(school=world.school, is_staff=True)
    response = login(staff).get(reverse("admin:audit_auditevent_changelist"))
    assert response.status_code == 403


def test_superuser_sees_every_school(world, login):
    superuser = TeacherFactory(school=None, is_staff=True, is_superuser=True)
    foreign = audit_record(event=Event.EXPORT, actor=world.foreign_teacher)
    response = login(superuser).get(reverse("admin:audit_auditevent_changelist"))
    assert foreign.pk in {event.pk for event in response.context["cl"].queryset}


def test_nul_in_login_form_is_a_form_error(db, client):
    response = client.post(reverse("login"), {"username": "a\x00b", "password": "x"})
    assert response.status_code == 200
    assert "Identifiant ou mot de passe incorrect" in response.content.decode()
