"""Jobs end to end: a real Celery worker runs the real transformers backend on the tiny model."""

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from classes.models import TermAssessment
from generation import services
from generation.backends import reset_backend_cache
from generation.models import Draft, GenerationJob, WorkerState
from generation.prompts import PROMPT_VERSION
from tests.conftest import wait_for
from tests.factories import StudentFactory, TermAssessmentFactory

pytestmark = pytest.mark.django_db(transaction=True)


def make_ready(world, *, count=None):
    """Give the class's students complete inputs for term 2 (term 1 averages exist)."""
    students = list(world.school_class.students.all())[:count]
    for student in students:
        TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
    return students


def job_finished(job):
    job.refresh_from_db()
    return job.status not in GenerationJob.ACTIVE_STATUSES


@pytest.mark.worker
def test_class_job_runs_on_a_real_worker(world, celery_worker):
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    wait_for(lambda: job_finished(job))
    assert job.status == GenerationJob.Status.SUCCEEDED, job.error_detail
    drafts = list(job.drafts.all())
    assert len(drafts) == 3
    for draft in drafts:
        assert draft.status == Draft.Status.GENERATED
        assert 1 <= draft.attempts <= 2
        assert len(draft.raw_texts) == draft.attempts
        assert isinstance(draft.flags, list)
        assert all({"code", "message"} <= set(flag) for flag in draft.flags)
        assert draft.prompt_version == PROMPT_VERSION
        assert draft.prompt_messages[0]["role"] == "system"
        assert draft.model_adapter.endswith("adapter")
        assert draft.is_test_model
    assert job.deliveries == 1
    state = WorkerState.objects.get()
    assert state.state == WorkerState.State.READY
    assert state.model_info["test_model"] is True


@pytest.mark.worker
def test_task_delivered_twice_writes_each_draft_once(world, celery_worker):
    from generation.tasks import generate_drafts

    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    generate_drafts.delay(job.pk)  # a second delivery of the same job
    wait_for(lambda: job_finished(job))
    first_texts = dict(job.drafts.values_list("pk", "text"))
    generate_drafts.delay(job.pk)
    wait_for(lambda: GenerationJob.objects.get(pk=job.pk).deliveries >= 1)
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED
    assert job.drafts.count() == 3
    assert dict(job.drafts.values_list("pk", "text")) == first_texts


def test_redelivery_resumes_only_pending_drafts(world, tiny_model_settings):
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    done = job.drafts.order_by("pk").first()
    Draft.objects.filter(pk=done.pk).update(status=Draft.Status.GENERATED, text="Déjà rédigée.")
    GenerationJob.objects.filter(pk=job.pk).update(status=GenerationJob.Status.RUNNING)
    services.job_run(job_id=job.pk, hostname="test")
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED
    done.refresh_from_db()
    assert done.text == "Déjà rédigée."
    assert job.drafts.filter(status=Draft.Status.GENERATED).count() == 3
    assert job.deliveries == 1


def test_deliveries_are_bounded(world, tiny_model_settings):
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    GenerationJob.objects.filter(pk=job.pk).update(
        status=GenerationJob.Status.RUNNING, deliveries=services.MAX_DELIVERIES
    )
    services.job_run(job_id=job.pk, hostname="test")
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED
    assert "Réessayer" in job.error_message
    assert job.drafts.filter(status=Draft.Status.PENDING).count() == 3


def test_model_that_cannot_load_fails_the_job_in_french(world, tiny_model_settings, caplog):
    tiny_model_settings.APPRECIATION_BASE_MODEL = "/nonexistent/model/folder"
    reset_backend_cache()
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    services.job_run(job_id=job.pk, hostname="gpu@test")
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED
    assert "Le modèle n'a pas pu être chargé" in job.error_message
    assert "/nonexistent/model/folder" in job.error_detail  # the English reason, for admins
    assert "Model load failed" in caplog.text
    # The inputs stay, the drafts wait for a retry.
    assert TermAssessment.objects.filter(term=world.term).count() == 3
    assert job.drafts.filter(status=Draft.Status.PENDING).count() == 3
    assert WorkerState.objects.get(hostname="gpu@test").state == WorkerState.State.FAILED


def test_retry_after_failure_finishes_the_class(world, tiny_model_settings):
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    GenerationJob.objects.filter(pk=job.pk).update(
        status=GenerationJob.Status.FAILED, error_message="x"
    )
    services.job_retry(job=job, user=world.teacher)
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.QUEUED and job.error_message == ""
    services.job_run(job_id=job.pk, hostname="test")
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED


def test_second_request_while_active_is_refused(world, tiny_model_settings):
    make_ready(world)
    services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    with pytest.raises(services.JobAlreadyActiveError):
        services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    assert GenerationJob.objects.count() == 1


def test_cancelled_job_is_not_run(world, tiny_model_settings):
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    services.job_cancel(job=job, user=world.teacher)
    services.job_run(job_id=job.pk, hostname="test")
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.CANCELLED
    assert job.drafts.filter(status=Draft.Status.CANCELLED).count() == 3
    assert job.deliveries == 0


def test_only_ready_students_get_a_draft(world, tiny_model_settings):
    make_ready(world, count=2)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    assert job.drafts.count() == 2


def test_nothing_ready_is_a_french_error(world, tiny_model_settings):
    with pytest.raises(ValidationError) as excinfo:
        services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    assert "Aucun élève" in excinfo.value.messages[0]


def test_only_the_owner_creates_jobs(world, tiny_model_settings):
    make_ready(world)
    with pytest.raises(PermissionDenied):
        services.job_create(assignment=world.assignment, term=world.term, user=world.head)


def test_closed_term_refuses_generation(world, tiny_model_settings):
    make_ready(world)
    world.term.is_closed = True
    world.term.save()
    with pytest.raises(ValidationError):
        services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)


def test_prompts_are_pseudonymous(world, tiny_model_settings):
    """Plant a marker in every field the platform holds about people and places."""
    marker = "Zorglubette"
    school = world.school
    school.name = f"Lycée {marker}"
    school.uai = "0000001Z"
    school.save()
    world.school_class.name = f"2nde {marker}"
    world.school_class.save()
    world.teacher.first_name = world.teacher.last_name = marker
    world.teacher.username = f"prof.{marker}"
    world.teacher.email = f"{marker}@example.org"
    world.teacher.save()
    for student in world.school_class.students.all():
        student.first_name = student.last_name = marker
        student.external_id = marker
        student.save()
    extra = StudentFactory(
        school_class=world.school_class, last_name=marker, first_name=marker, external_id=marker
    )
    TermAssessmentFactory(student=extra, term=world.terms[0])
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    assert job.drafts.count() == 4
    for draft in job.drafts.all():
        sent = json.dumps(draft.prompt_messages, ensure_ascii=False).casefold()
        assert marker.casefold() not in sent
        assert "0000001z" not in sent
        assert str(draft.student_id) not in sent.replace(".", " ").split()
