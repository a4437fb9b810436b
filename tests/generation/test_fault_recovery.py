"""Faults heal by themselves: real worker processes, a real Celery beat, real PostgreSQL and
Redis, and no person.

Each scenario drafts a class on a worker process (`celery worker`, solo pool, the `gpu` and
`default` queues, the locmem backend slowed to APPRECIATION_TEST_BATCH_SECONDS a batch) with a
`celery beat` process running the periodic recovery every second, breaks something in the
middle of the class, and waits, without any click, until every student is drafted exactly once:
one draft per student, each generated, each appréciation's text its draft's, the job succeeded.
Leases and stall times are shortened by the settings (LEASE, STALL below).

  (1) SIGKILL, restart with the same hostname: tests/generation/test_worker_process.py
  (2) SIGKILL, a replacement with another hostname (a recreated container)
  (3) pg_terminate_backend() on the worker's connections
  (4) a PostgreSQL restart (opt-in: APPRECIATION_TEST_PG_RESTART=1, which CI sets)
  (5) a Redis restart that loses the queue (opt-in: APPRECIATION_TEST_REDIS_RESTART=1, which
      CI sets; Redis is restarted with the command .ci/run starts it with)
  (6) SIGKILL between two batches (no claim held), a replacement with another hostname

They need PostgreSQL and Redis: outside CI they are skipped without them, in CI they fail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection

from generation import services
from generation.models import Appreciation, Draft, GenerationJob
from tests.conftest import make_school_with_class
from tests.factories import StudentFactory, TermAssessmentFactory
from tests.test_database_recovery import _admin_connection, restart_server, terminate_backends

ROOT = Path(__file__).resolve().parents[2]
LEASE = 4  # seconds; renewed every second by a live worker
STALL = 6
RECOVERY_INTERVAL = 1
BATCH_SECONDS = 0.6  # per batch of 2: a class of 8 takes about 2.4 s
HEAL_TIMEOUT = 60  # every scenario must heal within this (the measured times are far below)
PG_RESTART = "APPRECIATION_TEST_PG_RESTART"
REDIS_RESTART = "APPRECIATION_TEST_REDIS_RESTART"

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def postgresql_and_redis():
    missing = []
    if connection.vendor != "postgresql":
        missing.append(f"PostgreSQL (DATABASE_URL; the suite runs on {connection.vendor})")
    if not settings.REDIS_URL:
        missing.append("Redis (REDIS_URL)")
    if not missing:
        return
    message = "the fault-recovery scenarios need " + " and ".join(missing)
    if os.environ.get("CI"):
        pytest.fail(f"CI must run them: {message}", pytrace=False)
    pytest.skip(message)


def _database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


class Fleet:
    """The worker and beat processes of one scenario, sharing one log."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.log = tmp_path / "fleet.log"
        self.processes: list[subprocess.Popen] = []
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "appreciation_site.settings.local",
            "DJANGO_SECRET_KEY": "fault-recovery-test",
            "DATABASE_URL": _database_url(),
            "REDIS_URL": settings.CELERY_BROKER_URL,
            "APPRECIATION_BACKEND": "tests.generation.recovery_backend.SlowLocmemBackend",
            "APPRECIATION_TEST_BATCH_SECONDS": str(BATCH_SECONDS),
            "APPRECIATION_BATCH_SIZE": "2",
            "APPRECIATION_LEASE_SECONDS": str(LEASE),
            "APPRECIATION_STALL_SECONDS": str(STALL),
            "APPRECIATION_RECOVERY_INTERVAL": str(RECOVERY_INTERVAL),
            "APPRECIATION_DB_RETRY_SECONDS": "60",
            "PYTHONUNBUFFERED": "1",
        }

    def _start(self, *args: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "appreciation_site", *args],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def worker(self, hostname: str) -> subprocess.Popen:
        return self._start(
            "worker", "-Q", "gpu,default", "--pool=solo", "--concurrency=1",
            "--prefetch-multiplier=1", f"--hostname={hostname}", "--loglevel=INFO",
            "--without-heartbeat", "--without-gossip", "--without-mingle",
        )  # fmt: skip

    def beat(self) -> subprocess.Popen:
        return self._start(
            "beat", "--loglevel=INFO", f"--schedule={self.tmp_path / 'beat-schedule'}",
            f"--max-interval={RECOVERY_INTERVAL}",
        )  # fmt: skip

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.fixture
def fleet(tmp_path):
    import redis

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # no task of an earlier test
    fleet = Fleet(tmp_path)
    yield fleet
    fleet.stop()


def _query(predicate):
    """Run a read of the test's own; a connection the fault ended is replaced."""
    from django.db import InterfaceError, OperationalError

    try:
        return predicate()
    except (OperationalError, InterfaceError):
        connection.close()
        return None


def wait(predicate, *, timeout: float, what: str, fleet: Fleet) -> float:
    """Poll predicate until true; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if _query(predicate):
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n{fleet.tail()}")


def a_class(world, size: int = 8):
    """The class of `world` grown to `size` students, all ready for term 2. Up to 8 drafts,
    job_create sends one task: a lost or stuck task is not covered by a second one."""
    for index in range(size - world.school_class.students.count()):
        student = StudentFactory(school_class=world.school_class, last_name=f"Panne{index:02d}")
        TermAssessmentFactory(student=student, term=world.terms[0])
    students = list(world.school_class.students.all())
    for student in students:
        TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
    return students


def generated(job) -> int:
    return job.drafts.filter(status=Draft.Status.GENERATED).count()


def finished(job) -> bool:
    return GenerationJob.objects.get(pk=job.pk).status not in GenerationJob.ACTIVE_STATUSES


def assert_drafted_exactly_once(job, students, fleet: Fleet) -> None:
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED, (
        f"{job.status}: {job.error_message} {job.error_detail}\n{fleet.tail()}"
    )
    assert job.error_message == ""
    drafts = list(job.drafts.all())
    assert len(drafts) == len(students)
    assert sorted(d.student_id for d in drafts) == sorted(s.pk for s in students)
    for draft in drafts:
        assert draft.status == Draft.Status.GENERATED and draft.text, draft
        appreciation = Appreciation.objects.get(
            student_id=draft.student_id, subject_id=draft.subject_id, term_id=draft.term_id
        )
        assert appreciation.draft_id == draft.pk and appreciation.text == draft.text


def report(scenario: str, seconds: float) -> None:
    """The time to heal, from the fault's start to the job's success (shown with -s)."""
    print(f"\n[fault recovery] {scenario}: healed {seconds:.1f} s after the fault began")  # noqa: T201


def start_mid_class(world, fleet: Fleet, hostname: str):
    """A class queued, a worker and beat started, two drafts written: mid-class."""
    students = a_class(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    assert GenerationJob.objects.get(pk=job.pk).tasks_sent == 1
    fleet.beat()
    worker = fleet.worker(hostname)
    wait(lambda: generated(job) >= 2, timeout=60, what="the first drafts", fleet=fleet)
    return students, job, worker


# --- (2) a dead worker replaced by one with another hostname -------------------------------


def test_sigkill_then_a_replacement_with_another_hostname(world, fleet):
    students, job, worker = start_mid_class(world, fleet, "gpu@old-container")
    wait(
        lambda: job.drafts.filter(status=Draft.Status.RUNNING).exists(),
        timeout=10,
        what="a batch in progress",
        fleet=fleet,
    )
    fleet.kill(worker)
    fault = time.monotonic()
    held = job.drafts.filter(status=Draft.Status.RUNNING, claimed_by="gpu@old-container")
    assert held.exists(), "killed mid-batch, it should hold drafts"
    assert generated(job) < len(students), "the class finished before the kill"
    # Its task is unacknowledged in Redis until the visibility timeout: only the recovery
    # can hand the job to the new container, which never held anything.
    fleet.worker("gpu@new-container")
    wait(lambda: finished(job), timeout=HEAL_TIMEOUT, what="the job to finish", fleet=fleet)
    report("SIGKILL + replacement with another hostname", time.monotonic() - fault)
    assert_drafted_exactly_once(job, students, fleet)
    assert job.drafts.filter(claimed_by="gpu@new-container").exists()
    assert "sent again (claims expired" in fleet.log.read_text()


# --- (3) and (4) the database goes away mid-class -------------------------------------------


DATABASE_OUTAGES = [
    pytest.param(terminate_backends, id="pg_terminate_backend"),
    pytest.param(
        restart_server,
        id="postgresql-restart",
        marks=pytest.mark.skipif(
            os.environ.get(PG_RESTART) != "1",
            reason=f"restarts the whole PostgreSQL server: opt-in, {PG_RESTART}=1 (CI sets it)",
        ),
    ),
]


@pytest.mark.parametrize("outage", DATABASE_OUTAGES)
def test_the_database_goes_away_mid_class(world, fleet, outage):
    students, job, _ = start_mid_class(world, fleet, "gpu@steady")
    assert generated(job) < len(students), "the class finished before the outage"
    fault = time.monotonic()
    outage()
    print(f"\n[fault recovery] {outage.__name__} took {time.monotonic() - fault:.1f} s")  # noqa: T201
    connection.close()  # the test's own connection went with the others
    wait(lambda: finished(job), timeout=HEAL_TIMEOUT, what="the job to finish", fleet=fleet)
    report(f"database outage ({outage.__name__})", time.monotonic() - fault)
    assert_drafted_exactly_once(job, students, fleet)
    log = fleet.log.read_text()
    assert "reconnecting in" in log, "the worker never met the outage: the test proves nothing"
    assert "failed during generation" not in log


# --- (5) Redis restarts and forgets every queued task ---------------------------------------


def restart_redis() -> None:
    """Restart the broker's Redis as .ci/run starts it: nothing kept on disk."""
    import redis

    url = urlsplit(settings.CELERY_BROKER_URL)
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    client = redis.Redis(host=host, port=port)
    # The server goes away while answering: it is shutting down.
    with contextlib.suppress(redis.exceptions.ConnectionError):
        client.shutdown(nosave=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            client.ping()
            time.sleep(0.1)
        except redis.exceptions.ConnectionError:
            break
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", host, "--port", str(port),
         "--save", "", "--appendonly", "no"],
        check=True, timeout=30,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            return
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.skipif(
    os.environ.get(REDIS_RESTART) != "1",
    reason=f"restarts the Redis server of REDIS_URL (every database on it): opt-in,"
    f" {REDIS_RESTART}=1 (CI sets it)",
)
def test_a_redis_restart_mid_class_loses_nothing(world, fleet):
    students, job, _ = start_mid_class(world, fleet, "gpu@steady")
    # Another class waits in the queue behind it: the restart loses that task.
    _, other_terms, _, other_teacher, other_assignment = make_school_with_class(students=3)
    other_students = list(other_assignment.school_class.students.all())
    for student in other_students:
        TermAssessmentFactory(
            student=student, term=other_terms[1], subject=other_assignment.subject
        )
    queued = services.job_create(
        assignment=other_assignment, term=other_terms[1], user=other_teacher
    )
    assert generated(job) < len(students), "the class finished before the restart"
    fault = time.monotonic()
    restart_redis()
    wait(
        lambda: finished(job) and finished(queued),
        timeout=HEAL_TIMEOUT,
        what="both jobs to finish",
        fleet=fleet,
    )
    report("Redis restart", time.monotonic() - fault)
    assert_drafted_exactly_once(job, students, fleet)
    assert_drafted_exactly_once(queued, other_students, fleet)
    queued.refresh_from_db()
    assert queued.tasks_sent >= 2, "the lost task was never sent again"


# --- (6) killed between two batches --------------------------------------------------------


HOLD_NEXT_CLAIM = """
CREATE OR REPLACE FUNCTION appreciation_test_hold_claim() RETURNS trigger AS $$
BEGIN PERFORM pg_sleep(600); RETURN NEW; END $$ LANGUAGE plpgsql;
CREATE TRIGGER appreciation_test_hold_claim BEFORE UPDATE ON generation_draft FOR EACH ROW
WHEN (OLD.status = 'pending' AND NEW.status = 'running')
EXECUTE FUNCTION appreciation_test_hold_claim();
"""


def test_killed_between_two_batches_then_a_replacement(world, fleet):
    """The worker is killed while it claims its next batch, before the claim commits: it holds
    no draft, the job waits on it, and its replacement has another name."""
    students, job, worker = start_mid_class(world, fleet, "gpu@between")
    with _admin_connection() as admin:
        admin.execute(HOLD_NEXT_CLAIM)  # the next claim blocks inside its transaction
        try:
            deadline = time.monotonic() + 30
            while True:
                held = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event = 'PgSleep'"
                ).fetchall()
                if held:
                    break
                assert time.monotonic() < deadline, f"no claim held\n{fleet.tail()}"
                time.sleep(0.05)
            fleet.kill(worker)
            fault = time.monotonic()
            for (pid,) in held:  # the dead worker's transaction: rolled back
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        finally:
            admin.execute("DROP TRIGGER IF EXISTS appreciation_test_hold_claim ON generation_draft")
            admin.execute("DROP FUNCTION IF EXISTS appreciation_test_hold_claim()")
    connection.close()
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.RUNNING and job.worker_hostname == "gpu@between"
    assert not job.drafts.filter(status=Draft.Status.RUNNING).exists(), "between batches"
    assert 2 <= generated(job) < len(students)
    fleet.worker("gpu@replacement")
    wait(lambda: finished(job), timeout=HEAL_TIMEOUT, what="the job to finish", fleet=fleet)
    report("SIGKILL between two batches + replacement", time.monotonic() - fault)
    assert_drafted_exactly_once(job, students, fleet)
    assert "sent again (no sign of life" in fleet.log.read_text()
