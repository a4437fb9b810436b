"""The platform recovers from a PostgreSQL restart by itself, web side and Celery side.

A restart ends every server process: each connection the platform holds is dead, and the first
query on it fails. Ending every backend of the test database with pg_terminate_backend() does
the same to the platform's connections without touching the rest of the server; an opt-in test
(APPRECIATION_TEST_PG_RESTART=1) restarts the server for real.

Web side. The settings keep connections open (CONN_MAX_AGE 60 s on PostgreSQL) with
CONN_HEALTH_CHECKS: at the start of each request Django's request_started signal runs
close_old_connections(), which marks the connection as "to check"; its first use then pings it
(SELECT 1) and opens a new one when the ping fails. The requests here therefore go through
Django's WSGI handler, as under gunicorn: the test client disconnects close_old_connections from
request_started and request_finished, so through it a dead connection would never be replaced.

Celery side. On every task start (task_prerun) Celery's Django fixup closes the worker's
connections; the task's first query opens a new one. The test runs a real worker in a thread of
this process (solo pool, like the GPU worker) whose thread holds an open connection from its
start-up queries when the server goes away.

pytest-django keeps the settings' CONN_MAX_AGE and CONN_HEALTH_CHECKS (checked below), so nothing
is forced on the connection except in the control test that turns health checks off. The tests
need PostgreSQL (DATABASE_URL): on SQLite they are skipped, with the reason, outside CI, and
fail in CI (CI set), where the suite must run against PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time

import psycopg
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, connection, connections
from django.test import RequestFactory
from django.urls import reverse

from generation import services
from generation.backends import BaseBackend, GenerationResult, reset_backend_cache
from generation.models import Draft, GenerationJob
from tests.conftest import running_worker, wait_for
from tests.factories import TermAssessmentFactory

pytestmark = pytest.mark.django_db(transaction=True)

RESTART_OPT_IN = "APPRECIATION_TEST_PG_RESTART"
RESTART_SKIP_REASON = (
    f"restarts the whole PostgreSQL server (every database on it, other sessions included):"
    f" explicit opt-in only, set {RESTART_OPT_IN}=1 (cluster: APPRECIATION_TEST_PG_CLUSTER,"
    f" default 'main' of the server's major version; needs the rights to run pg_ctlcluster)"
)
GOOD_TEXT = "Ensemble satisfaisant, des efforts à poursuivre à l'écrit."


@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor == "postgresql":
        return
    if os.environ.get("CI"):
        pytest.fail(
            "CI must run the database recovery tests on PostgreSQL: DATABASE_URL is not a"
            f" PostgreSQL URL (the suite runs on {connection.vendor}).",
            pytrace=False,
        )
    pytest.skip(
        f"PostgreSQL only (the suite runs on {connection.vendor}): recovering from a PostgreSQL"
        " restart needs PostgreSQL; set DATABASE_URL=postgres://… to run it"
    )


# --- Outages ------------------------------------------------------------------------------


def _admin_connection() -> psycopg.Connection:
    """A connection of the test's own, outside Django, to the test database."""
    params = connection.settings_dict
    options = {
        key: value
        for key, value in {
            "dbname": params["NAME"],
            "user": params["USER"],
            "password": params["PASSWORD"],
            "host": params["HOST"],
            "port": params["PORT"],
            "sslmode": params.get("OPTIONS", {}).get("sslmode"),
        }.items()
        if value not in (None, "")
    }
    return psycopg.connect(**options, autocommit=True, connect_timeout=10)


def terminate_backends() -> int:
    """End every other connection to the test database, as a restart does; their count."""
    with _admin_connection() as admin:
        pids = [
            row[0]
            for row in admin.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
        assert pids, "no connection to end: the test would prove nothing"
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            (alive,) = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]
            ).fetchone()
            if not alive:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"backends {pids} still alive 10 s after pg_terminate_backend()")
    return len(pids)


def restart_server() -> None:
    """Restart the PostgreSQL cluster for real (opt-in); waits until it accepts connections."""
    with _admin_connection() as admin:
        (version_num,) = admin.execute("SHOW server_version_num").fetchone()
    version = str(int(version_num) // 10000)
    cluster = os.environ.get("APPRECIATION_TEST_PG_CLUSTER", "main")
    result = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "restart"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr or result.stdout
    deadline = time.monotonic() + 60
    while True:
        try:
            with _admin_connection() as admin:
                admin.execute("SELECT 1")
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


OUTAGES = [
    pytest.param(terminate_backends, id="backends-terminated"),
    pytest.param(
        restart_server,
        id="server-restarted",
        marks=pytest.mark.skipif(os.environ.get(RESTART_OPT_IN) != "1", reason=RESTART_SKIP_REASON),
    ),
]


# --- Web side -----------------------------------------------------------------------------


class WsgiBrowser:
    """Requests through Django's WSGI handler, signals included, as gunicorn sends them."""

    def __init__(self, client, user) -> None:
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        self.cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())
        self.app = WSGIHandler()

    def get(self, path: str) -> int:
        environ = RequestFactory().get(path, HTTP_COOKIE=self.cookie).environ
        status = []
        response = self.app(environ, lambda s, headers, exc_info=None: status.append(s))
        b"".join(response)
        response.close()  # request_finished, as the WSGI server does
        return int(status[0].split()[0])


def class_page_url(world) -> str:
    return reverse("classes:class_page", args=[world.assignment.pk, world.term.pk])


def test_connections_are_persistent_and_health_checked():
    """The premise: the settings (kept by pytest-django) reuse connections and check them."""
    assert connection.settings_dict["CONN_MAX_AGE"] > 0
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True


@pytest.mark.parametrize("outage", OUTAGES)
def test_the_first_request_after_the_outage_succeeds(world, client, outage):
    browser = WsgiBrowser(client, world.teacher)
    url = class_page_url(world)
    assert browser.get(url) == 200
    before = connection.connection
    assert before is not None, "the connection should outlive the request (CONN_MAX_AGE)"

    outage()

    assert browser.get(url) == 200  # the health check found the dead connection, replaced it
    assert connection.connection is not before
    assert browser.get(url) == 200


def test_without_health_checks_one_request_fails_then_the_next_recovers(world, client, caplog):
    """The control: the outage does break the connection, and CONN_HEALTH_CHECKS is what spares
    the teacher the error page; without it close_old_connections() still drops the broken
    connection at the end of the failed request."""
    browser = WsgiBrowser(client, world.teacher)
    url = class_page_url(world)
    connection.settings_dict["CONN_HEALTH_CHECKS"] = False
    connection.close()  # read again at the next connect
    try:
        assert browser.get(url) == 200
        terminate_backends()
        with caplog.at_level(logging.ERROR, logger="django.request"):
            assert browser.get(url) == 500
        errors = [r.exc_info[0].__name__ for r in caplog.records if r.exc_info]
        assert errors and set(errors) <= {"OperationalError", "InterfaceError"}, errors
        assert browser.get(url) == 200
    finally:
        connection.settings_dict["CONN_HEALTH_CHECKS"] = True
        connection.close()


# --- Celery side --------------------------------------------------------------------------


class SteadyBackend(BaseBackend):
    """Writes the same acceptable text for everyone: the test is about connections."""

    def load(self) -> None:
        self._status = "ready"

    def model_info(self):
        return {"base_model": "steady", "adapter": "", "test_model": True}

    def generate(self, requests, *, seed=None, on_result=None, on_progress=None):
        return [GenerationResult(key=request.key, text=GOOD_TEXT) for request in requests]


@pytest.fixture
def steady_worker(transactional_db, settings):
    """A real Celery worker (solo pool, in a thread) whose thread holds an open connection.

    The real worker queries the database when it is ready (generation.tasks
    recover_after_restart, on worker_ready); the test worker sends test_worker_started instead,
    so the same handler runs there, in the worker's thread. Yields that thread's connection.
    """
    from celery.contrib.testing import worker as celery_testing

    from generation.tasks import recover_after_restart

    settings.APPRECIATION_BACKEND = f"{__name__}.SteadyBackend"
    settings.APPRECIATION_BATCH_SIZE = 4
    reset_backend_cache()
    held = {}
    ready = threading.Event()

    def on_started(sender, worker, consumer, **kwargs):
        try:
            recover_after_restart(sender=consumer)
            held["connection"] = connections["default"]
        finally:
            ready.set()

    celery_testing.test_worker_started.connect(on_started, weak=False)
    try:
        with running_worker():
            assert ready.wait(30), "the worker did not start"
            yield held
    finally:
        celery_testing.test_worker_started.disconnect(on_started)
        reset_backend_cache()


@pytest.mark.worker
@pytest.mark.parametrize("outage", OUTAGES)
def test_a_task_after_the_outage_works(world, steady_worker, outage):
    for student in world.school_class.students.all():
        TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
    worker_connection = steady_worker.get("connection")
    assert worker_connection is not None and worker_connection.connection is not None, (
        "the worker's thread should hold an open connection before the outage"
    )

    outage()

    assert not worker_connection.is_usable(), "the outage should have killed it"
    # The teacher's click: a request, so it starts with close_old_connections().
    close_old_connections()
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)

    def finished():
        job.refresh_from_db()
        return job.status not in GenerationJob.ACTIVE_STATUSES

    wait_for(finished, timeout=60)
    assert job.status == GenerationJob.Status.SUCCEEDED, job.error_detail
    assert job.drafts.count() == 3
    assert set(job.drafts.values_list("status", flat=True)) == {Draft.Status.GENERATED}
    # The periodic recovery goes on working in this process too, and finds nothing to do.
    assert services.jobs_recover_stalled() == 0
