"""No model on the worker: found when it starts, told at once, one clear action on the page."""

import logging
import re
import threading
import time
from types import SimpleNamespace

import pytest
from django.urls import reverse

from classes.models import Teacher
from generation import services
from generation.backends import (
    MODEL_MISSING_USER_MESSAGE,
    BaseBackend,
    ModelAvailability,
    reset_backend_cache,
)
from generation.models import Draft, GenerationJob, QuickDraft, WorkerState
from generation.prompts import PromptInputs
from generation.services import jobs
from generation.tasks import recover_after_restart
from tests.conftest import running_worker, wait_for
from tests.factories import (
    TeacherFactory,
    TeachingAssignmentFactory,
    TermAssessmentFactory,
    shared_subject,
)

HX = {"HTTP_HX_REQUEST": "true"}


class AbsentModelBackend(BaseBackend):
    """An in-memory backend whose model is not on this machine."""

    loads = 0

    def check_available(self) -> ModelAvailability:
        return ModelAvailability(
            available=False,
            base_model="owner/base",
            adapter="owner/adapter",
            missing=("base model owner/base: not in the Hugging Face cache (/cache)",),
        )

    def load(self) -> None:
        type(self).loads += 1
        raise AssertionError("a missing model must not be loaded")

    def model_info(self):
        return {"base_model": "owner/base", "adapter": "owner/adapter", "test_model": False}


class PresentModelBackend(AbsentModelBackend):
    def check_available(self) -> ModelAvailability:
        return ModelAvailability(available=True, base_model="owner/base", adapter="owner/adapter")


def make_ready(world, assignment=None):
    assignment = assignment or world.assignment
    for student in assignment.school_class.students.all():
        TermAssessmentFactory(student=student, term=world.term, subject=assignment.subject)


def consumer(hostname: str, queues=("default", "gpu")):
    """What Celery's worker_ready hands its receivers, as far as the handler reads it."""
    return SimpleNamespace(
        hostname=hostname,
        app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=queues))),
    )


def missing_state(hostname="gpu@box") -> WorkerState:
    return WorkerState.objects.create(
        hostname=hostname,
        state=WorkerState.State.MISSING,
        detail="base model unsloth/Llama-3.2-3B-Instruct: not in the Hugging Face cache (/c)",
    )


# --- At worker start ----------------------------------------------------------------------


@pytest.mark.django_db
def test_worker_check_records_missing_model(caplog):
    caplog.set_level(logging.ERROR)
    result = services.worker_check_model(hostname="gpu@box", backend=AbsentModelBackend())
    assert not result.available
    state = WorkerState.objects.get(hostname="gpu@box")
    assert state.state == WorkerState.State.MISSING
    assert state.get_state_display() == "Modèle absent"
    assert "not in the Hugging Face cache" in state.detail
    assert "fetch_model" in caplog.text and "APPRECIATION_TEST_MODEL=1" in caplog.text


@pytest.mark.django_db
def test_worker_check_records_idle_when_the_model_is_there():
    missing_state()  # from an earlier start, before the model was installed
    services.worker_check_model(hostname="gpu@box", backend=PresentModelBackend())
    state = WorkerState.objects.get(hostname="gpu@box")
    assert state.state == WorkerState.State.IDLE and state.detail == ""


class BrokenCheckBackend(PresentModelBackend):
    def check_available(self) -> ModelAvailability:
        raise OSError("cache unreadable")


@pytest.mark.django_db
def test_a_check_that_breaks_never_blocks_the_worker(caplog):
    result = services.worker_check_model(hostname="gpu@box", backend=BrokenCheckBackend())
    assert result.available  # the load, later, will say what is wrong
    assert WorkerState.objects.get(hostname="gpu@box").state == WorkerState.State.IDLE
    assert "The model check failed" in caplog.text


@pytest.mark.django_db
def test_worker_ready_handler_checks_the_configured_model(settings, tmp_path, tiny_model_dirs):
    base, adapter = tiny_model_dirs
    settings.APPRECIATION_BACKEND = "worker.backends.transformers.TransformersBackend"
    settings.APPRECIATION_BASE_MODEL = str(tmp_path / "not-downloaded")
    settings.APPRECIATION_ADAPTER = str(adapter)
    reset_backend_cache()
    try:
        started = time.monotonic()
        recover_after_restart(sender=consumer("gpu@box"))
        elapsed = time.monotonic() - started
        state = WorkerState.objects.get(hostname="gpu@box")
        assert state.state == WorkerState.State.MISSING
        assert f"{tmp_path / 'not-downloaded'}: no such folder" in state.detail
        assert state.model_info["status"] == "loading"  # checked, not loaded
        assert elapsed < 4  # well within what a start signal may take

        settings.APPRECIATION_BASE_MODEL = str(base)
        reset_backend_cache()
        recover_after_restart(sender=consumer("gpu@box"))
        assert WorkerState.objects.get(hostname="gpu@box").state == WorkerState.State.IDLE
    finally:
        reset_backend_cache()


@pytest.mark.django_db
def test_a_default_queue_worker_has_no_model_to_check(settings):
    settings.APPRECIATION_BACKEND = f"{__name__}.AbsentModelBackend"
    reset_backend_cache()
    recover_after_restart(sender=consumer("celery@web", queues=("default",)))
    assert not WorkerState.objects.exists()
    reset_backend_cache()


# --- A job while the model is missing ------------------------------------------------------


@pytest.mark.django_db
def test_job_fails_at_once_when_the_only_worker_has_no_model(world, monkeypatch):
    sent = []
    monkeypatch.setattr(jobs, "_enqueue", lambda job, draft_count: sent.append(job.pk))
    missing_state()
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    assert job.status == GenerationJob.Status.FAILED
    assert job.error_message == MODEL_MISSING_USER_MESSAGE
    assert "not in the Hugging Face cache" in job.error_detail
    assert sent == []  # nothing sent to wait on
    # Nothing lost: the drafts wait for « Réessayer », which asks the worker again.
    assert job.drafts.filter(status=Draft.Status.PENDING).count() == 3
    services.job_retry(job=job, user=world.teacher)
    assert sent == [job.pk]


@pytest.mark.django_db
def test_a_worker_with_the_model_still_gets_the_job(world, monkeypatch):
    monkeypatch.setattr(jobs, "_enqueue", lambda job, draft_count: None)
    missing_state("gpu@one")
    WorkerState.objects.create(hostname="gpu@two", state=WorkerState.State.READY)
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    assert job.status == GenerationJob.Status.QUEUED


@pytest.mark.django_db
def test_worker_fails_the_job_at_once_without_loading(world, monkeypatch, caplog):
    monkeypatch.setattr(jobs, "_enqueue", lambda job, draft_count: None)
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    AbsentModelBackend.loads = 0
    started = time.monotonic()
    services.job_run(job_id=job.pk, hostname="gpu@box", backend=AbsentModelBackend())
    assert time.monotonic() - started < 2
    assert AbsentModelBackend.loads == 0
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED
    assert job.error_message == MODEL_MISSING_USER_MESSAGE
    assert job.drafts.filter(status=Draft.Status.PENDING).count() == 3
    assert WorkerState.objects.get(hostname="gpu@box").state == WorkerState.State.MISSING


@pytest.mark.django_db
def test_quick_draft_fails_at_once_without_a_model(world, monkeypatch):
    monkeypatch.setattr("generation.tasks.generate_quick_draft.delay_on_commit", lambda pk: None)
    quick = services.quick_draft_create(
        user=world.teacher,
        inputs=PromptInputs("Histoire-Géographie", 1, (12, None, None), 7, 6, 8),
        level_name="Seconde",
    )
    services.quick_draft_run(quick_draft_id=quick.pk, backend=AbsentModelBackend())
    quick.refresh_from_db()
    assert quick.status == QuickDraft.Status.FAILED
    assert quick.error_message == MODEL_MISSING_USER_MESSAGE


@pytest.mark.django_db
def test_queued_quick_draft_page_says_the_model_is_missing(world, login, monkeypatch):
    monkeypatch.setattr("generation.tasks.generate_quick_draft.delay_on_commit", lambda pk: None)
    missing_state()
    quick = services.quick_draft_create(
        user=world.teacher,
        inputs=PromptInputs("Histoire-Géographie", 1, (12, None, None), 7, 6, 8),
        level_name="Seconde",
    )
    client = login(world.teacher)
    body = client.get(reverse("generation:quick_draft_result", args=[quick.pk]), **HX)
    assert "Le modèle de langue n'est pas installé" in body.content.decode()


# --- The review page --------------------------------------------------------------------------


def review_url(assignment, term):
    return reverse("generation:review", args=[assignment.pk, term.pk])


def retry_buttons(body: str) -> int:
    return len(re.findall(r">\s*Réessayer\s*</button>", body))


@pytest.fixture
def failed_for_missing_model(world, monkeypatch):
    monkeypatch.setattr(jobs, "_enqueue", lambda job, draft_count: None)
    missing_state()

    def start(user, assignment):
        make_ready(world, assignment)
        return services.job_create(assignment=assignment, term=world.term, user=user)

    return start


@pytest.mark.django_db
def test_teacher_is_told_to_warn_the_administrator(world, login, failed_for_missing_model):
    failed_for_missing_model(world.teacher, world.assignment)
    body = login(world.teacher).get(review_url(world.assignment, world.term)).content.decode()
    assert "Le modèle de langue n'est pas installé sur le serveur de calcul" in body
    assert "Prévenez l'administrateur de votre établissement" in body
    assert "fetch_model" not in body and "APPRECIATION_TEST_MODEL" not in body
    assert "Hugging Face cache" not in body  # the English detail is for administrators
    assert body.count('id="model-missing"') == 1  # said once, not by the job and the worker
    assert retry_buttons(body) == 1
    assert "Générer les appréciations" not in body


@pytest.mark.parametrize(
    "admin",
    [
        {"role": Teacher.Role.SCHOOL_ADMIN, "is_staff": False},
        {"role": Teacher.Role.TEACHER, "is_staff": True},
    ],
    ids=["school-admin", "staff"],
)
@pytest.mark.django_db
def test_administrator_is_given_the_install_command(world, login, failed_for_missing_model, admin):
    user = TeacherFactory(school=world.school, **admin)
    assignment = TeachingAssignmentFactory(
        teacher=user, school_class=world.school_class, subject=shared_subject("HGGSP")
    )
    failed_for_missing_model(user, assignment)
    body = login(user).get(review_url(assignment, world.term)).content.decode()
    assert "Le modèle de langue n'est pas installé sur le serveur de calcul" in body
    assert "<code>python manage.py fetch_model</code>" in body
    assert "<code>APPRECIATION_TEST_MODEL=1 make run</code>" in body
    assert "not in the Hugging Face cache" in body  # what is missing, where it was looked for
    assert body.count('id="model-missing"') == 1
    assert retry_buttons(body) == 1


@pytest.mark.django_db
def test_missing_model_is_shown_before_any_job(world, login):
    missing_state()
    make_ready(world)
    body = login(world.teacher).get(review_url(world.assignment, world.term)).content.decode()
    assert "Prévenez l'administrateur de votre établissement" in body
    assert "Générer les appréciations" in body  # the one action: it fails at once, plainly


@pytest.mark.django_db
def test_htmx_start_answers_the_message_at_once(world, login):
    missing_state()
    make_ready(world)
    client = login(world.teacher)
    start = reverse("generation:job_start", args=[world.assignment.pk, world.term.pk])
    panel = client.post(start, **HX).content.decode()
    assert "Le modèle de langue n'est pas installé" in panel
    assert "hx-trigger" not in panel  # nothing to poll: the job already failed
    assert retry_buttons(panel) == 1


@pytest.mark.django_db
def test_a_failed_job_offers_one_retry_button(world, login, monkeypatch):
    monkeypatch.setattr(jobs, "_enqueue", lambda job, draft_count: None)
    WorkerState.objects.create(hostname="gpu@box", state=WorkerState.State.READY)
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    GenerationJob.objects.filter(pk=job.pk).update(
        status=GenerationJob.Status.FAILED, error_message=services.GENERATION_FAILED_MESSAGE
    )
    body = login(world.teacher).get(review_url(world.assignment, world.term)).content.decode()
    assert "La génération a échoué en cours de route" in body
    assert retry_buttons(body) == 1
    assert "Générer les appréciations" not in body


# --- With a real worker ---------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_real_worker_without_model_then_with_it(world, tiny_model_settings, tmp_path):
    """A real worker starts on a missing model: it says so within seconds, a job fails at once;
    the model installed, « Réessayer » drafts the class with nothing lost."""
    from celery.contrib.testing import worker as celery_testing

    real_base = tiny_model_settings.APPRECIATION_BASE_MODEL
    tiny_model_settings.APPRECIATION_BASE_MODEL = str(tmp_path / "not-downloaded")
    reset_backend_cache()
    ready = threading.Event()

    def on_started(sender, worker, consumer, **kwargs):
        # The test worker sends test_worker_started where a real one sends worker_ready.
        try:
            recover_after_restart(sender=consumer)
        finally:
            ready.set()

    celery_testing.test_worker_started.connect(on_started, weak=False)
    try:
        with running_worker() as worker:
            assert ready.wait(30), "the worker did not start"
            state = WorkerState.objects.get(hostname=worker.hostname)
            assert state.state == WorkerState.State.MISSING

            make_ready(world)
            job = services.job_create(
                assignment=world.assignment, term=world.term, user=world.teacher
            )
            assert job.status == GenerationJob.Status.FAILED
            assert job.error_message == MODEL_MISSING_USER_MESSAGE

            # Retried before the model is there: the worker answers at once, not after a load.
            started = time.monotonic()
            services.job_retry(job=job, user=world.teacher)
            wait_for(
                lambda: GenerationJob.objects.get(pk=job.pk).status == GenerationJob.Status.FAILED,
                timeout=30,
            )
            assert time.monotonic() - started < 10
            job.refresh_from_db()
            assert job.error_message == MODEL_MISSING_USER_MESSAGE
            assert job.drafts.filter(status=Draft.Status.PENDING).count() == 3

            # The administrator installs the model: the next retry drafts the class.
            tiny_model_settings.APPRECIATION_BASE_MODEL = real_base
            reset_backend_cache()
            services.job_retry(job=job, user=world.teacher)
            wait_for(
                lambda: (
                    GenerationJob.objects.get(pk=job.pk).status not in GenerationJob.ACTIVE_STATUSES
                )
            )
            job.refresh_from_db()
            assert job.status == GenerationJob.Status.SUCCEEDED, job.error_detail
            assert job.drafts.filter(status=Draft.Status.GENERATED).count() == 3
            # (The in-thread test worker names its tasks' host differently from its own.)
            assert WorkerState.objects.filter(state=WorkerState.State.READY).exists()
    finally:
        celery_testing.test_worker_started.disconnect(on_started)
        reset_backend_cache()
