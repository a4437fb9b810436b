"""Sessions for shared computers, the Content-Security-Policy, and `check --deploy`."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.services import audit_record
from tests.factories import PASSWORD, TeacherFactory
from tests.test_url_security import build_objects

BASE_DIR = Path(__file__).resolve().parent.parent
CSP = "Content-Security-Policy"

# --- Sessions -----------------------------------------------------------------------------------


def test_session_settings():
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE is True
    if "DJANGO_SESSION_COOKIE_AGE" not in os.environ:
        assert settings.SESSION_COOKIE_AGE == 8 * 60 * 60
    assert settings.SESSION_COOKIE_HTTPONLY is True
    assert settings.SESSION_COOKIE_SAMESITE == "Lax"
    assert settings.CSRF_COOKIE_HTTPONLY is True


@pytest.mark.django_db
def test_session_cookie_dies_with_the_browser(world, client):
    response = client.post(
        reverse("login"), {"username": world.teacher.username, "password": PASSWORD}
    )
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie.value
    assert cookie["expires"] == ""  # a browser-session cookie: no Expires...
    assert cookie["max-age"] == ""  # ...and no Max-Age
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    # Server side, the session still ends after SESSION_COOKIE_AGE.
    session = Session.objects.get(session_key=cookie.value)
    remaining = session.expire_date - timezone.now()
    assert timedelta(seconds=settings.SESSION_COOKIE_AGE - 60) < remaining
    assert remaining <= timedelta(seconds=settings.SESSION_COOKIE_AGE)


@pytest.mark.django_db
def test_a_session_past_its_maximum_age_is_over(world, client):
    client.post(reverse("login"), {"username": world.teacher.username, "password": PASSWORD})
    assert client.get(reverse("classes:dashboard")).status_code == 200
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    response = client.get(reverse("classes:dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_csrf_cookie_is_http_only(client):
    response = client.get(reverse("login"))
    assert response.cookies[settings.CSRF_COOKIE_NAME]["httponly"] is True


# --- Content-Security-Policy ------------------------------------------------------------------


def directives(header: str) -> dict[str, list[str]]:
    result = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            result[words[0]] = words[1:]
    return result


@pytest.mark.django_db
def test_responses_carry_the_policy(client):
    response = client.get(reverse("login"))
    policy = directives(response[CSP])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert "unsafe" not in response[CSP]
    # Errors too.
    assert CSP in client.get("/cette-page-n-existe-pas/")


class InlineCode(HTMLParser):
    """Collects what a strict policy would block: inline scripts, styles and handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style> element")
        for name, value in attrs:
            if re.fullmatch(r"on[a-z]+", name):
                self.found.append(f"{name}= handler on <{tag}>")
            if name == "style":
                self.found.append(f"style= attribute on <{tag}>")
            if value and value.strip().lower().startswith("javascript:"):
                self.found.append(f"javascript: URL in {name}= on <{tag}>")

    handle_startendtag = handle_starttag


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    parser.close()
    return parser.found


def test_the_checker_finds_inline_code():
    assert inline_code('<script>alert(1)</script><p onclick="x()" style="color:red">') == [
        "<script> without src",
        "onclick= handler on <p>",
        "style= attribute on <p>",
    ]
    assert inline_code('<script src="/static/js/app.js" defer></script>') == []


def pages(world, objects) -> list[tuple[str, str]]:
    own = objects["own"]
    cls = [own.assignment.pk, own.term.pk]
    whole = [own.assignment.school_class.pk, own.term.pk]
    teacher = [
        reverse("classes:dashboard"),
        reverse("classes:class_page", args=cls),
        reverse("classes:import_upload", args=cls),
        reverse("generation:review", args=cls),
        reverse("generation:job_progress", args=[own.job.pk]),
        reverse("generation:quick_draft"),
        reverse("generation:quick_draft_result", args=[own.quick.pk]),
        reverse("password_change"),
        reverse("password_change_done"),
    ]
    if "exports:index" in _names():
        teacher += [
            reverse("exports:index"),
            reverse("exports:assignment", args=cls),
            reverse("exports:assignment_copy", args=cls),
            reverse("exports:class", args=whole),
            reverse("exports:class_copy", args=whole),
        ]
    head = [
        reverse("generation:head_queue"),
        reverse("generation:head_review", args=cls),
        reverse("classes:class_page", args=cls),
        reverse("learning:dashboard"),  # its SVG charts included
    ]
    event = audit_record(event="export", actor=world.teacher, kind="csv")
    admin = [
        reverse("admin:index"),
        reverse("admin:classes_teacher_changelist"),
        reverse("admin:classes_teacher_change", args=[world.teacher.pk]),
        reverse("admin:classes_teacher_add"),
        reverse("admin:classes_student_changelist"),
        reverse("admin:classes_schoolclass_change", args=[own.assignment.school_class.pk]),
        reverse("admin:audit_auditevent_changelist"),
        reverse("admin:audit_auditevent_change", args=[event.pk]),
    ]
    if "exports:index" in _names():
        admin.append(reverse("exports:index"))
    return (
        [("teacher", url) for url in teacher]
        + [("head", url) for url in head]
        + [("admin", url) for url in admin]
    )


def _names() -> set[str]:
    from tests.test_url_security import all_url_names

    return set(all_url_names())


@pytest.mark.django_db
def test_no_page_has_inline_scripts_styles_or_handlers(world):
    objects = build_objects(world)
    users = {"teacher": world.teacher, "head": world.head, "admin": world.admin}
    clients = {}
    for name, user in users.items():
        clients[name] = Client()
        clients[name].force_login(user)
    anonymous = Client()
    checked = [("anonymous", reverse("login"), anonymous.get(reverse("login")))]
    for who, url in pages(world, objects):
        checked.append((who, url, clients[who].get(url)))
    # The lockout page, reached for real.
    for n in range(5):
        lockout = anonymous.post(reverse("login"), {"username": "verrou", "password": f"x{n}"})
    assert lockout.status_code == 429
    checked.append(("anonymous", "lockout", lockout))
    superuser = TeacherFactory(school=None, is_staff=True, is_superuser=True)
    root = Client()
    root.force_login(superuser)
    checked.append(("superuser", "admin:index", root.get(reverse("admin:index"))))
    # The teachers' panel (a superuser is a member): a pair to judge, the results.
    for name in ("learning:panel", "learning:panel_results"):
        checked.append(("superuser", name, root.get(reverse(name))))

    problems = []
    for who, url, response in checked:
        if response.status_code not in (200, 286, 429):  # 286: htmx "stop polling"
            problems.append(f"{who} {url}: status {response.status_code}")
            continue
        if CSP not in response:
            problems.append(f"{who} {url}: no {CSP} header")
        for found in inline_code(response.content.decode()):
            problems.append(f"{who} {url}: {found}")
    assert not problems, "\n".join(problems)


@pytest.mark.django_db
def test_htmx_injects_no_style_and_evaluates_nothing(client):
    page = client.get(reverse("login")).content.decode()
    config = """content='{"includeIndicatorStyles": false, "allowEval": false}'"""
    assert f'<meta name="htmx-config" {config}>' in page
    # The vendored htmx reads that meta tag (htmx 2.x).
    htmx = next((BASE_DIR / "static" / "vendor").glob("htmx-*.min.js")).read_text()
    assert "htmx-config" in htmx and "includeIndicatorStyles" in htmx


def test_static_scripts_use_no_eval():
    for script in (BASE_DIR / "static" / "js").glob("*.js"):
        code = script.read_text()
        assert not re.search(r"\beval\s*\(|new\s+Function\s*\(", code), script.name


# --- check --deploy ---------------------------------------------------------------------------


def test_deploy_check_is_clean_with_production_settings():
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_SECURE_", "DJANGO_DEBUG", "DJANGO_SESSION_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="appreciation_site.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="example.org",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
