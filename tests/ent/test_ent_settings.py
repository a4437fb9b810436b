"""ENT sign-in without the CAS server: the school's settings in the admin, the login page,
the refusals that need no server, and password sign-in beside it."""

from __future__ import annotations

import socket
from html import unescape

import pytest
from django.contrib.auth import SESSION_KEY, authenticate
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.models import AuditEvent
from audit.throttle import address_locked
from classes.models import School, validate_cas_server_url
from tests.factories import PASSWORD, SchoolFactory, TeacherFactory

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return unescape(response.content.decode())


def school_form(school: School, **changes) -> dict:
    data = {
        "name": school.name,
        "uai": school.uai,
        "appreciation_max_chars": school.appreciation_max_chars,
        "city": school.city,
        "typographic_spaces": school.typographic_spaces,
        "cas_server_url": "",
        "cas_user_attribute": "",
        "cas_match_field": "username",
    }
    data.update(changes)
    return data


def test_the_school_admin_sets_up_the_ent_of_their_school(world, login):
    client = login(world.admin)
    url = reverse("admin:classes_school_change", args=[world.school.pk])
    page = text(client.get(url))
    assert "Connexion par l'ENT (CAS)" in page
    data = school_form(
        world.school,
        cas_server_url="https://ent.exemple.fr/cas/",
        cas_user_attribute="mail",
        cas_match_field="email",
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    world.school.refresh_from_db()
    assert world.school.cas_server_url == "https://ent.exemple.fr/cas/"
    assert world.school.cas_user_attribute == "mail"
    assert world.school.cas_match_field == School.CasMatchField.EMAIL
    # Another school's settings stay out of reach.
    foreign = world.foreign_teacher.school
    assert client.get(reverse("admin:classes_school_change", args=[foreign.pk])).status_code == 404


@pytest.mark.parametrize(
    "address",
    [
        "http://ent.exemple.fr/cas/",  # plain http to a remote server
        "ftp://ent.exemple.fr/cas/",
        "https://ent.exemple.fr/cas/?service=x",
        "javascript:alert(1)",
    ],
)
def test_the_admin_refuses_an_address_that_is_not_https(world, login, address):
    client = login(world.admin)
    url = reverse("admin:classes_school_change", args=[world.school.pk])
    response = client.post(url, school_form(world.school, cas_server_url=address))
    assert response.status_code == 200  # the form again, with the error
    assert "errorlist" in response.content.decode()
    world.school.refresh_from_db()
    assert world.school.cas_server_url == ""


def test_the_admin_refuses_a_bad_attribute_name(world, login):
    client = login(world.admin)
    url = reverse("admin:classes_school_change", args=[world.school.pk])
    data = school_form(
        world.school, cas_server_url="https://ent.exemple.fr/cas/", cas_user_attribute="a b<"
    )
    assert client.post(url, data).status_code == 200
    world.school.refresh_from_db()
    assert world.school.cas_server_url == ""


def test_http_to_this_machine_only_when_the_setting_allows_it(settings):
    settings.ENT_CAS_ALLOW_HTTP_LOCAL = True
    validate_cas_server_url("http://127.0.0.1:8443/cas/")
    validate_cas_server_url("http://localhost/cas/")
    with pytest.raises(ValidationError):
        validate_cas_server_url("http://10.0.0.5/cas/")
    settings.ENT_CAS_ALLOW_HTTP_LOCAL = False
    with pytest.raises(ValidationError):
        validate_cas_server_url("http://127.0.0.1:8443/cas/")
    validate_cas_server_url("https://ent.exemple.fr/cas/")


def test_production_settings_never_allow_http():
    from appreciation_site.settings import base

    assert base.ENT_CAS_ALLOW_HTTP_LOCAL is False
    assert base.CAS_CREATE_USER is False
    assert base.AUTHENTICATION_BACKENDS[-1] == "ent.backends.SchoolCASBackend"


def test_the_school_admin_sets_a_teachers_ent_id(world, login):
    client = login(world.admin)
    url = reverse("admin:classes_teacher_change", args=[world.teacher.pk])
    assert 'name="ent_id"' in client.get(url).content.decode()


def test_the_login_page_offers_the_ent_of_the_schools_that_set_it_up(client):
    with_ent = SchoolFactory(name="Lycée Avec ENT", cas_server_url="https://ent.exemple.fr/cas/")
    SchoolFactory(name="Lycée Sans ENT")
    page = text(client.get(reverse("login"), {"next": "/exports/"}))
    assert "Se connecter avec l'ENT — Lycée Avec ENT" in page
    assert reverse("ent_login", kwargs={"school_id": with_ent.pk}) + "?next=/exports/" in page
    assert "Lycée Sans ENT" not in page
    # The password form is still there.
    assert 'name="password"' in page


def test_the_login_page_without_any_ent(client):
    SchoolFactory(name="Lycée Sans ENT")
    assert "ENT" not in text(client.get(reverse("login")))


def test_starting_sends_the_browser_to_the_schools_cas_server(client):
    school = SchoolFactory(cas_server_url="https://ent.exemple.fr/cas")  # no trailing slash
    response = client.get(reverse("ent_login", kwargs={"school_id": school.pk}))
    assert response.status_code == 302
    assert response["Location"] == (
        "https://ent.exemple.fr/cas/login?service=http%3A%2F%2Ftestserver%2Fconnexion%2Fent%2F"
        f"{school.pk}%2F"
    )


def test_a_school_without_ent_or_missing_is_a_404(client):
    school = SchoolFactory()
    assert client.get(reverse("ent_login", kwargs={"school_id": school.pk})).status_code == 404
    assert client.get(reverse("ent_login", kwargs={"school_id": 999_999})).status_code == 404


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("ticket", ["", "ST-" + "x" * 300, "ST-\x00", "ST-abc\n", " "])
def test_junk_tickets_are_refused_without_calling_anyone(client, ticket):
    school = SchoolFactory(cas_server_url=f"http://127.0.0.1:{_closed_port()}/cas/")
    url = reverse("ent_login", kwargs={"school_id": school.pk})
    response = client.get(url, {"ticket": ticket})
    if ticket:
        assert response.status_code == 403
        assert "ticket invalide" in text(response)
    else:
        assert response.status_code == 302  # no ticket: off to the ENT
    assert SESSION_KEY not in client.session


def test_an_unreachable_cas_server_is_a_french_page(client):
    TeacherFactory(username="prof.ent")
    school = SchoolFactory(cas_server_url=f"http://127.0.0.1:{_closed_port()}/cas/")
    url = reverse("ent_login", kwargs={"school_id": school.pk})
    response = client.get(url, {"ticket": "ST-1-abcdef"})
    assert response.status_code == 403
    assert "ne répond pas correctement" in text(response)
    assert AuditEvent.objects.get(event=AuditEvent.Event.LOGIN_FAILED).detail == {
        "method": "ent",
        "reason": "server_error",
    }


def test_password_sign_in_still_works_for_a_school_with_an_ent(client):
    school = SchoolFactory(cas_server_url="https://ent.exemple.fr/cas/")
    teacher = TeacherFactory(school=school)
    response = client.post(reverse("login"), {"username": teacher.username, "password": PASSWORD})
    assert response.status_code == 302
    assert int(client.session[SESSION_KEY]) == teacher.pk
    event = AuditEvent.objects.get(event=AuditEvent.Event.LOGIN)
    assert event.detail["method"] == "password"


def test_a_password_never_reaches_the_ent_backend(rf):
    teacher = TeacherFactory()
    request = rf.post("/connexion/")
    request.session = {}
    user = authenticate(request, username=teacher.username, password=PASSWORD)
    assert user == teacher
    assert user.backend == "django.contrib.auth.backends.ModelBackend"


def test_refused_ent_sign_ins_never_lock_a_schools_address(rf):
    """A school's teachers share one address: ENT refusals (accounts not created yet) are
    logged, but only password failures count toward the address limit."""
    from django.conf import settings

    request = rf.get("/", REMOTE_ADDR="203.0.113.9")
    for _ in range(settings.LOGIN_FAILURES_PER_ADDRESS + 5):
        AuditEvent.objects.create(
            event=AuditEvent.Event.LOGIN_FAILED,
            ip="203.0.113.9",
            detail={"method": "ent", "reason": "unknown_user"},
        )
    assert not address_locked(request)
    for _ in range(settings.LOGIN_FAILURES_PER_ADDRESS):
        AuditEvent.objects.create(event=AuditEvent.Event.LOGIN_FAILED, ip="203.0.113.9")
    assert address_locked(request)


def test_an_ent_id_is_unique_within_a_school_only():
    from django.db import IntegrityError, transaction

    school, other = SchoolFactory(), SchoolFactory()
    TeacherFactory(school=school, ent_id="E-1")
    TeacherFactory(school=other, ent_id="E-1")  # another school: allowed
    TeacherFactory(school=school)
    TeacherFactory(school=school)  # several empty ent_id: allowed
    with pytest.raises(IntegrityError), transaction.atomic():
        TeacherFactory(school=school, ent_id="E-1")


@pytest.mark.parametrize(
    "next_url",
    ["https://evil.example/", "//evil.example/", "/\\evil.example", "/a\x00b", "javascript:x"],
)
def test_only_local_next_addresses_are_kept(client, next_url):
    school = SchoolFactory(cas_server_url="https://ent.exemple.fr/cas/")
    response = client.get(reverse("ent_login", kwargs={"school_id": school.pk}), {"next": next_url})
    assert response.status_code == 302
    assert "next" not in response["Location"]  # the service address carries no `next`
