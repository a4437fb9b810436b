"""A real CAS server (django-cas-server) in its own process, for the whole test session.

tests/cas_server/ is its Django project: its own SQLite database in a temporary folder, its
own users (CAS_USERS below) and the service addresses it accepts. With CI set, a server that
does not start fails the run; elsewhere the ENT flow tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90  # seconds: migrate + first request on a loaded 2-core machine
CAS_PASSWORD = "mot-de-passe-ent-1"

# The ENT's accounts. The platform's teachers are created by each test (tests/ent/test_*.py).
CAS_USERS = [
    {"username": "prof.ent", "email": "prof.ent@ent.example"},
    {"username": "prof.mail", "email": "Prof.Mail@ENT.example"},
    {"username": "prof.b", "email": "prof.b@ent.example"},
    {"username": "prof.inactif", "email": "prof.inactif@ent.example"},
    {"username": "inconnu", "email": "inconnu@ent.example"},
]
# The platform as the test client sees it, and another application of the same ENT.
PLATFORM_SERVICES = r"^http://testserver/connexion/ent/"
OTHER_SERVICE = "http://testserver/autre-application/"


@dataclass
class CasServer:
    url: str  # the CAS address a school enters in the admin, e.g. http://127.0.0.1:PORT/cas/
    process: subprocess.Popen


def _start_failed(message: str):
    if os.environ.get("CI"):
        pytest.fail(f"The test CAS server did not start: {message}", pytrace=False)
    pytest.skip(f"The test CAS server did not start: {message}")


@pytest.fixture(scope="session")
def cas_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cas-server")
    spec = folder / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "users": [{**user, "password": CAS_PASSWORD} for user in CAS_USERS],
                "services": [PLATFORM_SERVICES, "^" + OTHER_SERVICE],
            }
        ),
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "CAS_TEST_DB": str(folder / "cas.sqlite3"),
        "DJANGO_SETTINGS_MODULE": "tests.cas_server.settings",
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.cas_server.serve", str(spec)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read_output():
        for line in process.stdout:
            lines.append(line.rstrip())
            if line.startswith("READY "):
                ready.set()
        ready.set()  # the process ended

    threading.Thread(target=read_output, daemon=True).start()
    ready.wait(START_TIMEOUT)
    port = next((line.split()[1] for line in lines if line.startswith("READY ")), None)
    if port is None:
        process.kill()
        process.wait(10)
        _start_failed("\n".join(lines[-30:]) or f"no answer in {START_TIMEOUT} s")
    url = f"http://127.0.0.1:{port}/cas/"
    try:
        response = requests.get(url + "login", timeout=30)
        response.raise_for_status()
    except requests.RequestException as error:
        process.kill()
        process.wait(10)
        _start_failed(str(error))
    yield CasServer(url=url, process=process)
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


class _FormInputs(HTMLParser):
    """The <input name=... value=...> of the page's login form."""

    def __init__(self):
        super().__init__()
        self.inputs: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        if tag == "input":
            attributes = dict(attrs)
            if attributes.get("name") and attributes.get("type") != "checkbox":
                self.inputs[attributes["name"]] = attributes.get("value") or ""


def cas_sign_in(login_url: str, username: str, password: str = CAS_PASSWORD) -> str:
    """Sign in on the CAS server's own form, as a browser would (its CSRF token and login
    ticket included); returns where the server sends the browser back: service?ticket=ST-..."""
    browser = requests.Session()
    page = browser.get(login_url, timeout=30)
    assert page.status_code == 200, page.status_code
    form = _FormInputs()
    form.feed(page.text)
    assert "lt" in form.inputs and "csrfmiddlewaretoken" in form.inputs, form.inputs
    data = {**form.inputs, "username": username, "password": password}
    answer = browser.post(
        page.url, data=data, headers={"Referer": page.url}, allow_redirects=False, timeout=30
    )
    assert answer.status_code == 302, (answer.status_code, answer.text[:500])
    location = answer.headers["Location"]
    assert "ticket=ST-" in location, location
    return location


def ticket_of(location: str) -> str:
    return parse_qs(urlsplit(location).query)["ticket"][0]
