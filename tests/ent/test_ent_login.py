"""Sign-in through the ENT, end to end against a real CAS server (django-cas-server).

The platform (Django's test client) sends the browser to the school's CAS server; the test
signs in on the server's form over HTTP; the platform validates the ticket by calling the
server's /p3/serviceValidate, then signs in the teacher of that school it names, or refuses.
"""

from __future__ import annotations

from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import SESSION_KEY
from django.urls import reverse

from audit.models import AuditEvent
from classes.models import School, Teacher
from tests.factories import SchoolFactory, TeacherFactory

from .conftest import OTHER_SERVICE, cas_sign_in, ticket_of

pytestmark = pytest.mark.django_db

UNKNOWN_MESSAGE = (
    "Votre compte n'existe pas encore sur la plateforme : demandez à l'administrateur "
    "de votre établissement"
)
REPLAYED_MESSAGE = "ticket invalide, expiré ou déjà utilisé"


@pytest.fixture
def schools(cas_server):
    """School A signs in through the test ENT (on the CAS user name); school B has no ENT."""
    school_a = SchoolFactory(name="Lycée A", cas_server_url=cas_server.url)
    school_b = SchoolFactory(name="Lycée B")
    return school_a, school_b


def start(client, school: School, next_url: str | None = None):
    """The platform's « Se connecter avec l'ENT »: returns the CAS login address."""
    url = reverse("ent_login", kwargs={"school_id": school.pk})
    response = client.get(url, {"next": next_url} if next_url else {})
    assert response.status_code == 302
    return response["Location"]


def text(response) -> str:
    return unescape(response.content.decode())


def signed_in_as(client) -> int | None:
    value = client.session.get(SESSION_KEY)
    return int(value) if value is not None else None


def test_the_whole_flow_signs_the_teacher_in(client, cas_server, schools):
    school_a, _ = schools
    teacher = TeacherFactory(school=school_a, username="prof.ent")
    login_url = start(client, school_a, next_url="/exports/")
    # The school's own CAS server, with the platform's service address.
    assert login_url.startswith(cas_server.url + "login?")
    service = parse_qs(urlsplit(login_url).query)["service"][0]
    assert service == f"http://testserver/connexion/ent/{school_a.pk}/?next=%2Fexports%2F"
    back = cas_sign_in(login_url, "prof.ent")
    assert back.startswith(service + "&ticket=ST-")
    response = client.get(back)
    assert response.status_code == 302
    assert response["Location"] == "/exports/"
    assert signed_in_as(client) == teacher.pk
    # A real session: the dashboard opens.
    assert client.get(reverse("classes:dashboard")).status_code == 200
    # Audited, with the method.
    event = AuditEvent.objects.get(event=AuditEvent.Event.LOGIN)
    assert event.actor == teacher
    assert event.school == school_a
    assert event.detail["method"] == "ent"
    # Nothing created.
    assert Teacher.objects.count() == 1


def test_replayed_ticket_is_refused(client, cas_server, schools):
    school_a, _ = schools
    teacher = TeacherFactory(school=school_a, username="prof.ent")
    back = cas_sign_in(start(client, school_a), "prof.ent")
    assert client.get(back).status_code == 302
    assert signed_in_as(client) == teacher.pk
    # The same ticket again, from another browser: the CAS server refuses it.
    client.logout()
    response = client.get(back)
    assert response.status_code == 403
    assert REPLAYED_MESSAGE in text(response)
    assert signed_in_as(client) is None
    failed = AuditEvent.objects.get(event=AuditEvent.Event.LOGIN_FAILED)
    assert failed.detail == {"method": "ent", "reason": "invalid_ticket"}
    assert failed.school == school_a


def test_ticket_for_another_service_is_refused(client, cas_server, schools):
    """A ticket the ENT issued for another application, brought to the platform."""
    school_a, _ = schools
    TeacherFactory(school=school_a, username="prof.ent")
    other_login = f"{cas_server.url}login?service={OTHER_SERVICE}"
    back = cas_sign_in(other_login, "prof.ent")
    assert back.startswith(OTHER_SERVICE)
    url = reverse("ent_login", kwargs={"school_id": school_a.pk})
    response = client.get(url, {"ticket": ticket_of(back)})
    assert response.status_code == 403
    assert REPLAYED_MESSAGE in text(response)
    assert signed_in_as(client) is None


def test_ticket_for_the_platform_with_another_next_is_refused(client, cas_server, schools):
    """The service address includes `next`: a ticket is bound to the exact address."""
    school_a, _ = schools
    TeacherFactory(school=school_a, username="prof.ent")
    back = cas_sign_in(start(client, school_a, next_url="/exports/"), "prof.ent")
    url = reverse("ent_login", kwargs={"school_id": school_a.pk})
    response = client.get(url, {"next": "/", "ticket": ticket_of(back)})
    assert response.status_code == 403
    assert signed_in_as(client) is None


def test_unknown_user_gets_the_french_page_and_nothing_is_created(client, cas_server, schools):
    school_a, _ = schools
    TeacherFactory(school=school_a, username="prof.ent")
    before = Teacher.objects.count()
    back = cas_sign_in(start(client, school_a), "inconnu")
    response = client.get(back)
    assert response.status_code == 403
    assert UNKNOWN_MESSAGE in text(response)
    assert signed_in_as(client) is None
    assert Teacher.objects.count() == before
    assert not Teacher.objects.filter(username="inconnu").exists()
    failed = AuditEvent.objects.get(event=AuditEvent.Event.LOGIN_FAILED)
    assert failed.actor_username == "inconnu"
    assert failed.detail["reason"] == "unknown_user"


def test_user_of_another_school_is_refused(client, cas_server, schools):
    """School A's ENT authenticates `prof.b`, an account of school B only."""
    school_a, school_b = schools
    TeacherFactory(school=school_a, username="prof.ent")
    prof_b = TeacherFactory(school=school_b, username="prof.b")
    back = cas_sign_in(start(client, school_a), "prof.b")
    response = client.get(back)
    assert response.status_code == 403
    assert UNKNOWN_MESSAGE in text(response)
    assert signed_in_as(client) is None
    prof_b.refresh_from_db()
    assert prof_b.last_login is None


def test_inactive_account_is_refused(client, cas_server, schools):
    school_a, _ = schools
    TeacherFactory(school=school_a, username="prof.inactif", is_active=False)
    response = client.get(cas_sign_in(start(client, school_a), "prof.inactif"))
    assert response.status_code == 403
    assert "Votre compte est désactivé" in text(response)
    assert signed_in_as(client) is None


def test_matching_on_the_mail_attribute_within_the_school(client, cas_server, schools):
    """The school matches the ENT's `mail` attribute to the teacher's e-mail (any case)."""
    school_a, school_b = schools
    school_a.cas_user_attribute = "mail"
    school_a.cas_match_field = School.CasMatchField.EMAIL
    school_a.save()
    # The same address in another school is never a candidate.
    TeacherFactory(school=school_b, username="b-homonyme", email="prof.mail@ent.example")
    teacher = TeacherFactory(school=school_a, username="claire.m", email="prof.mail@ent.example")
    response = client.get(cas_sign_in(start(client, school_a), "prof.mail"))
    assert response.status_code == 302
    assert signed_in_as(client) == teacher.pk


def test_matching_on_the_ent_id(client, cas_server, schools):
    school_a, _ = schools
    school_a.cas_match_field = School.CasMatchField.ENT_ID
    school_a.save()
    TeacherFactory(school=school_a, username="prof.ent")  # same username, no ent_id: not used
    teacher = TeacherFactory(school=school_a, username="dupont.c", ent_id="prof.ent")
    response = client.get(cas_sign_in(start(client, school_a), "prof.ent"))
    assert response.status_code == 302
    assert signed_in_as(client) == teacher.pk


def test_next_to_another_site_is_dropped(client, cas_server, schools):
    school_a, _ = schools
    teacher = TeacherFactory(school=school_a, username="prof.ent")
    login_url = start(client, school_a, next_url="https://evil.example/phish")
    service = parse_qs(urlsplit(login_url).query)["service"][0]
    assert "evil" not in service
    response = client.get(cas_sign_in(login_url, "prof.ent"))
    assert response.status_code == 302
    assert response["Location"] == reverse("classes:dashboard")
    assert signed_in_as(client) == teacher.pk


def test_a_school_validates_with_its_own_server_only(client, cas_server, schools):
    """A ticket of school A's ENT is worthless at school C, whose ENT is elsewhere."""
    school_a, _ = schools
    TeacherFactory(school=school_a, username="prof.ent")
    # School C's ENT: nothing listens there (a port of the test server, another path).
    school_c = SchoolFactory(cas_server_url=cas_server.url.replace("/cas/", "/autre-cas/"))
    TeacherFactory(school=school_c, username="prof.ent-c")
    back = cas_sign_in(start(client, school_a), "prof.ent")
    url = reverse("ent_login", kwargs={"school_id": school_c.pk})
    response = client.get(url, {"ticket": ticket_of(back)})
    assert response.status_code == 403
    assert signed_in_as(client) is None


def test_two_teachers_of_the_school_with_the_same_address_are_refused(client, cas_server, schools):
    school_a, _ = schools
    school_a.cas_user_attribute = "mail"
    school_a.cas_match_field = School.CasMatchField.EMAIL
    school_a.save()
    TeacherFactory(school=school_a, username="claire.m", email="prof.mail@ent.example")
    TeacherFactory(school=school_a, username="claire.m2", email="PROF.MAIL@ent.example")
    response = client.get(cas_sign_in(start(client, school_a), "prof.mail"))
    assert response.status_code == 403
    assert "Plusieurs comptes de votre établissement" in text(response)
    assert signed_in_as(client) is None
    assert AuditEvent.objects.get(event=AuditEvent.Event.LOGIN_FAILED).detail["reason"] == (
        "ambiguous"
    )


def test_an_attribute_the_ent_does_not_send_is_refused(client, cas_server, schools):
    """The school expects an attribute the ENT does not release: nobody is guessed."""
    school_a, _ = schools
    school_a.cas_user_attribute = "ENTPersonLogin"
    school_a.save()
    TeacherFactory(school=school_a, username="prof.ent")
    response = client.get(cas_sign_in(start(client, school_a), "prof.ent"))
    assert response.status_code == 403
    assert "L'ENT n'a pas transmis" in text(response)
    assert signed_in_as(client) is None


def test_the_backend_in_djangos_authenticate(rf, cas_server, schools):
    """SchoolCASBackend answers django.contrib.auth.authenticate() with a ticket, too."""
    from django.contrib.auth import authenticate

    school_a, _ = schools
    teacher = TeacherFactory(school=school_a, username="prof.ent")
    client_url = f"http://testserver/connexion/ent/{school_a.pk}/"
    back = cas_sign_in(f"{cas_server.url}login?service={client_url}", "prof.ent")
    request = rf.get("/connexion/ent/", REMOTE_ADDR="198.51.100.7")
    request.session = {}
    user = authenticate(
        request, cas_school=school_a, cas_ticket=ticket_of(back), cas_service=client_url
    )
    assert user == teacher
    assert user.backend == "ent.backends.SchoolCASBackend"
    assert request.ent_outcome.identity == "prof.ent"
