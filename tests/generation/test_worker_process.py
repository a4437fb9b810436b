"""A real GPU-queue worker process killed with SIGKILL in the middle of a class."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings
from django.db import connection

from generation import services
from generation.models import Draft, GenerationJob
from generation.services import jobs
from tests.factories import StudentFactory, TermAssessmentFactory

ROOT = Path(__file__).resolve().parents[2]
HOSTNAME = "gpu@sigkill-test"

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def broker_env(tmp_path) -> tuple[dict, Celery]:
    """The worker process and the test must share a broker: Redis when configured, else
    kombu's filesystem transport in a temporary folder."""
    if settings.REDIS_URL:
        sender = Celery(broker=settings.CELERY_BROKER_URL)
        return {"REDIS_URL": settings.CELERY_BROKER_URL}, sender
    folder = tmp_path / "broker"
    for sub in ("out", "processed"):
        (folder / sub).mkdir(parents=True)
    options = {
        "data_folder_in": str(folder / "out"),
        "data_folder_out": str(folder / "out"),
        "processed_folder": str(folder / "processed"),
    }
    sender = Celery(broker="filesystem://", broker_transport_options=options)
    return {"CELERY_FILESYSTEM_BROKER_DIR": str(folder)}, sender


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker(env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "appreciation_site",
            "worker",
            "-Q",
            "gpu",
            "--pool=solo",
            "--concurrency=1",
            "--prefetch-multiplier=1",
            f"--hostname={HOSTNAME}",
            "--loglevel=INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkill_mid_class_then_restart_finishes_without_duplicates(
    world, tiny_model_settings, tmp_path, monkeypatch
):
    for index in range(25):
        student = StudentFactory(school_class=world.school_class, last_name=f"Kill{index:02d}")
        TermAssessmentFactory(student=student, term=world.terms[0])
    for student in world.school_class.students.all():
        TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
    monkeypatch.setattr(jobs, "_enqueue", lambda job, draft_count: None)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    GenerationJob.objects.filter(pk=job.pk).update(tasks_sent=1)
    total = job.drafts.count()
    assert total == 28

    base, adapter = tiny_model_settings.APPRECIATION_BASE_MODEL, settings.APPRECIATION_ADAPTER
    broker, sender = broker_env(tmp_path)
    env = {
        **os.environ,
        **broker,
        "DJANGO_SETTINGS_MODULE": "appreciation_site.settings.local",
        "DJANGO_SECRET_KEY": "worker-test",
        "DATABASE_URL": database_url(),
        "APPRECIATION_BASE_MODEL": base,
        "APPRECIATION_ADAPTER": adapter,
        "APPRECIATION_TEST_MODEL": "1",
        "APPRECIATION_DEVICE": "cpu",
        "APPRECIATION_BATCH_SIZE": "1",
        "APPRECIATION_MAX_NEW_TOKENS": "48",
        "APPRECIATION_MAX_ATTEMPTS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "worker.log"
    sender.send_task("generation.tasks.generate_drafts", args=[job.pk], queue="gpu")
    worker = start_worker(env, log)
    try:
        generated = job.drafts.filter(status=Draft.Status.GENERATED)
        wait(lambda: generated.count() >= 3, 120, "the first drafts")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        before_restart = dict(generated.values_list("pk", "text"))
        assert 3 <= len(before_restart) < total, "the worker finished before it was killed"
        # Killed inside a batch it holds drafts; between two batches it holds none. Either way
        # the job is running and was last taken by this worker, which recovery relies on.
        job.refresh_from_db()
        assert job.status == GenerationJob.Status.RUNNING
        assert job.worker_hostname == HOSTNAME

        # Restarted under the same name, the worker releases what it held and resumes.
        worker = start_worker(env, log)
        wait(
            lambda: (
                GenerationJob.objects.get(pk=job.pk).status not in GenerationJob.ACTIVE_STATUSES
            ),
            180,
            "the job to finish after the restart",
        )
    finally:
        worker.kill()
        worker.wait(timeout=10)
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED, log.read_text()[-3000:]
    drafts = job.drafts.all()
    assert drafts.count() == total
    assert drafts.filter(status=Draft.Status.GENERATED).count() == total
    assert drafts.values("student").distinct().count() == total
    # The drafts written before the kill are kept as they were.
    assert {pk: text for pk, text in drafts.values_list("pk", "text") if pk in before_restart} == (
        before_restart
    )
    assert "sent again" in log.read_text()
