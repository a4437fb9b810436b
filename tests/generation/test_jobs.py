"""Jobs end to end: a real Celery worker runs the real transformers backend on the tiny model."""

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from classes.models import TermAssessment
from generation import services
from generation.backends import reset_backend_cache
from generation.models import Draft, GenerationJob, WorkerState
from generation.prompts import PROMPT_VERSION
from generation.services import runner
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
    job.refresh_from_db()
    assert job.tasks_sent == 1  # three drafts: one batch, one task
    GenerationJob.objects.filter(pk=job.pk).update(
        status=GenerationJob.Status.RUNNING,
        deliveries=job.tasks_sent + services.MAX_REDELIVERIES,
    )
    services.job_run(job_id=job.pk, hostname="test")
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED
    assert "Réessayer" in job.error_message
    assert job.drafts.filter(status=Draft.Status.PENDING).count() == 3


def test_model_that_cannot_load_fails_the_job_in_french(
    world, tiny_model_settings, caplog, tmp_path
):
    # Its files are there (a missing model is told at once: test_model_missing.py), but broken.
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "model.safetensors").write_bytes(b"not weights")
    tiny_model_settings.APPRECIATION_BASE_MODEL = str(broken)
    reset_backend_cache()
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    services.job_run(job_id=job.pk, hostname="gpu@test")
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED
    assert "Le modèle n'a pas pu être chargé" in job.error_message
    assert str(broken) in job.error_detail  # the English reason, for admins
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


def test_two_workers_share_a_class_without_duplicates(world, tiny_model_settings):
    """Two GPU workers consume the same job: each claims its own batches."""
    from tests.factories import StudentFactory, TermAssessmentFactory

    for index in range(5):
        student = StudentFactory(school_class=world.school_class, last_name=f"Plus{index}")
        TermAssessmentFactory(student=student, term=world.terms[0])
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    job.refresh_from_db()
    assert job.tasks_sent == 1  # 8 drafts: one task per batch of about 8
    # Worker A claims one batch (size 2) and is still generating it...
    first = runner._claim_batch(job=job, hostname="gpu@a", size=2)
    assert len(first) == 2
    # ...while worker B runs the job to the end: it never touches A's batch.
    GenerationJob.objects.filter(pk=job.pk).update(status=GenerationJob.Status.RUNNING)
    services.job_run(job_id=job.pk, hostname="gpu@b")
    drafts = Draft.objects.filter(job=job)
    assert drafts.filter(claimed_by="gpu@b", status=Draft.Status.GENERATED).count() == 6
    assert set(drafts.filter(status=Draft.Status.RUNNING).values_list("claimed_by", flat=True)) == {
        "gpu@a"
    }
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.RUNNING  # A's batch is not written yet
    # A's next delivery (as after a restart) takes back what it held, finishes, closes the job.
    services.job_run(job_id=job.pk, hostname="gpu@a")
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED
    assert drafts.filter(status=Draft.Status.GENERATED).count() == 8
    assert drafts.values("student").distinct().count() == 8
    claims = dict(drafts.values_list("pk", "claims"))
    assert {claims[d.pk] for d in first} == {2}
    assert {c for pk, c in claims.items() if pk not in {d.pk for d in first}} == {1}


def test_expired_lease_is_taken_over(world, tiny_model_settings):
    from datetime import timedelta

    from django.utils import timezone

    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    runner._claim_batch(job=job, hostname="gpu@dead", size=3)
    Draft.objects.filter(job=job).update(
        claimed_at=timezone.now()
        - timedelta(seconds=tiny_model_settings.APPRECIATION_LEASE_SECONDS + 1)
    )
    services.job_run(job_id=job.pk, hostname="gpu@alive")
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED
    assert set(Draft.objects.values_list("claimed_by", flat=True)) == {"gpu@alive"}


def test_draft_that_kills_its_worker_fails_alone(world, tiny_model_settings):
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    poison = job.drafts.order_by("pk").first()
    Draft.objects.filter(pk=poison.pk).update(
        status=Draft.Status.RUNNING, claimed_by="gpu@a", claims=services.MAX_CLAIMS
    )
    services.job_run(job_id=job.pk, hostname="gpu@a")
    job.refresh_from_db()
    poison.refresh_from_db()
    assert poison.status == Draft.Status.FAILED
    assert job.status == GenerationJob.Status.FAILED
    assert "Réessayer" in job.error_message
    assert job.drafts.filter(status=Draft.Status.GENERATED).count() == 2
    services.job_retry(job=job, user=world.teacher)
    services.job_run(job_id=job.pk, hostname="gpu@a")
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED


def _ago(seconds: float):
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() - timedelta(seconds=seconds)


@pytest.fixture
def sent(monkeypatch):
    """The tasks the recovery sends, instead of the broker."""
    from generation import tasks

    calls = []
    monkeypatch.setattr(
        tasks.generate_drafts, "delay_on_commit", lambda job_id: calls.append(job_id)
    )
    monkeypatch.setattr(tasks.generate_drafts, "delay", lambda job_id: calls.append(job_id))
    return calls


def test_worker_that_vanished_is_sent_again_by_the_recovery(world, tiny_model_settings, sent):
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    sent.clear()
    runner._claim_batch(job=job, hostname="gpu@gone", size=3)
    stale = _ago(tiny_model_settings.APPRECIATION_STALL_SECONDS + 5)
    Draft.objects.filter(job=job).update(claimed_at=stale)
    GenerationJob.objects.filter(pk=job.pk).update(
        status=GenerationJob.Status.RUNNING, heartbeat_at=stale, sent_at=stale
    )
    assert services.jobs_recover_stalled() == 1
    assert sent == [job.pk]
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.RUNNING  # not failed: nobody has to click
    assert job.tasks_sent == 2 and job.resends == 1
    assert services.jobs_recover_stalled() == 0  # just sent: the next tick waits
    # Any worker, whatever its name, takes the expired claims over and finishes the class.
    services.job_run(job_id=job.pk, hostname="gpu@new-container")
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED
    assert set(job.drafts.values_list("claimed_by", flat=True)) == {"gpu@new-container"}
    assert job.resends == 0


def test_expired_claims_are_sent_again_before_the_stall_time(world, tiny_model_settings, sent):
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    sent.clear()
    runner._claim_batch(job=job, hostname="gpu@gone", size=2)
    lease = tiny_model_settings.APPRECIATION_LEASE_SECONDS
    Draft.objects.filter(job=job, status=Draft.Status.RUNNING).update(claimed_at=_ago(lease + 1))
    GenerationJob.objects.filter(pk=job.pk).update(
        status=GenerationJob.Status.RUNNING, heartbeat_at=_ago(lease + 1), sent_at=_ago(lease + 1)
    )
    assert services.jobs_recover_stalled() == 1
    assert sent == [job.pk]


def test_a_live_job_and_a_fresh_queue_are_left_alone(world, tiny_model_settings, sent):
    from django.utils import timezone

    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    sent.clear()
    assert services.jobs_recover_stalled() == 0  # queued just now
    runner._claim_batch(job=job, hostname="gpu@slow", size=3)
    GenerationJob.objects.filter(pk=job.pk).update(
        status=GenerationJob.Status.RUNNING, heartbeat_at=timezone.now()
    )
    assert services.jobs_recover_stalled() == 0
    assert sent == []


def test_a_lost_queued_task_is_sent_again(world, tiny_model_settings, sent):
    """Redis restarted without persistence: the queue is empty, the database says queued."""
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    sent.clear()
    GenerationJob.objects.filter(pk=job.pk).update(
        sent_at=_ago(tiny_model_settings.APPRECIATION_STALL_SECONDS + 1)
    )
    assert services.jobs_recover_stalled() == 1
    assert sent == [job.pk]


def test_a_live_workers_lease_is_renewed_not_robbed(world, tiny_model_settings):
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    GenerationJob.objects.filter(pk=job.pk).update(status=GenerationJob.Status.RUNNING)
    mine = runner._claim_batch(job=job, hostname="gpu@slow", size=2)
    lease = tiny_model_settings.APPRECIATION_LEASE_SECONDS
    Draft.objects.filter(job=job, status=Draft.Status.RUNNING).update(claimed_at=_ago(lease - 1))
    assert services.lease_renew(job_id=job.pk, hostname="gpu@slow") == 2
    assert services.lease_renew(job_id=job.pk, hostname="gpu@other") == 0
    # Long after the first lease would have run out, another worker finds nothing of it.
    other = runner._claim_batch(job=job, hostname="gpu@other", size=3)
    assert {d.pk for d in other}.isdisjoint({d.pk for d in mine})
    assert set(
        Draft.objects.filter(pk__in=[d.pk for d in mine]).values_list("claimed_by", flat=True)
    ) == {"gpu@slow"}


def test_the_lease_keeper_renews_while_a_batch_takes_longer_than_the_lease(
    world, tiny_model_settings
):
    import time

    tiny_model_settings.APPRECIATION_LEASE_SECONDS = 1
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    GenerationJob.objects.filter(pk=job.pk).update(status=GenerationJob.Status.RUNNING)
    mine = runner._claim_batch(job=job, hostname="gpu@slow", size=3)
    with runner._LeaseKeeper(job_id=job.pk, hostname="gpu@slow"):
        time.sleep(2.5)  # a batch two and a half leases long
        assert runner._claim_batch(job=job, hostname="gpu@thief", size=3) == []
    assert len(mine) == 3


def test_resends_without_any_worker_alive_are_bounded(world, tiny_model_settings, sent):
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    runner._claim_batch(job=job, hostname="gpu@gone", size=2)
    stale = _ago(tiny_model_settings.APPRECIATION_STALL_SECONDS + 5)
    Draft.objects.filter(job=job, status=Draft.Status.RUNNING).update(claimed_at=stale)
    GenerationJob.objects.filter(pk=job.pk).update(
        status=GenerationJob.Status.RUNNING,
        heartbeat_at=stale,
        sent_at=stale,
        resends=services.MAX_RESENDS,
    )
    sent.clear()
    assert services.jobs_recover_stalled() == 0
    assert sent == []
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED
    assert job.error_message == services.TOO_MANY_DELIVERIES_MESSAGE
    assert "Réessayer" in job.error_message
    assert job.drafts.filter(status=Draft.Status.PENDING).count() == 3  # kept for « Réessayer »


def test_resends_while_other_jobs_progress_are_not_counted(world, tiny_model_settings, sent):
    """A long queue is no fault: another job's fresh heartbeat shows the workers alive."""
    from django.utils import timezone

    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    GenerationJob.objects.create(  # another class's job, on a live worker
        assignment=world.other_assignment,
        term=world.term,
        status=GenerationJob.Status.RUNNING,
        heartbeat_at=timezone.now(),
    )
    GenerationJob.objects.filter(pk=job.pk).update(
        sent_at=_ago(tiny_model_settings.APPRECIATION_STALL_SECONDS + 1),
        resends=services.MAX_RESENDS,
    )
    sent.clear()
    assert services.jobs_recover_stalled() == 1
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.QUEUED and job.resends == services.MAX_RESENDS


def test_a_database_blink_is_retried_and_fails_nothing(world, tiny_model_settings, monkeypatch):
    from django.db import OperationalError

    tiny_model_settings.APPRECIATION_DB_RETRY_SECONDS = 30
    monkeypatch.setattr(runner.time, "sleep", lambda seconds: None)
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    real_claim, real_write = runner._claim_batch, runner._write_outcomes
    failures = {"claim": 2, "write": 1}

    def flaky(name, real):
        def step(**kwargs):
            if failures[name]:
                failures[name] -= 1
                raise OperationalError("server closed the connection unexpectedly")
            return real(**kwargs)

        return step

    monkeypatch.setattr(runner, "_claim_batch", flaky("claim", real_claim))
    monkeypatch.setattr(runner, "_write_outcomes", flaky("write", real_write))
    services.job_run(job_id=job.pk, hostname="gpu@a")
    job.refresh_from_db()
    assert failures == {"claim": 0, "write": 0}
    assert job.status == GenerationJob.Status.SUCCEEDED
    assert job.drafts.filter(status=Draft.Status.GENERATED).count() == 3


def test_a_database_gone_for_good_leaves_the_job_to_the_recovery(
    world, tiny_model_settings, monkeypatch
):
    from django.db import OperationalError

    tiny_model_settings.APPRECIATION_DB_RETRY_SECONDS = 0.2
    monkeypatch.setattr(runner.time, "sleep", lambda seconds: None)
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)

    def down(**kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(runner, "_write_outcomes", down)
    services.job_run(job_id=job.pk, hostname="gpu@a")
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.RUNNING  # never failed because the DB blinked
    assert job.error_message == ""


def test_restarted_worker_releases_and_resends(world, tiny_model_settings, monkeypatch):
    from generation import tasks

    sent = []
    monkeypatch.setattr(tasks.generate_drafts, "delay", lambda job_id: sent.append(job_id))
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    GenerationJob.objects.filter(pk=job.pk).update(status=GenerationJob.Status.RUNNING)
    runner._claim_batch(job=job, hostname="gpu@host", size=2)
    sent.clear()
    assert services.worker_recover(hostname="gpu@host") == 1
    assert sent == [job.pk]
    assert job.drafts.filter(status=Draft.Status.PENDING).count() == 3
    assert services.worker_recover(hostname="gpu@other") == 0


def test_worker_killed_between_two_batches_resends_its_job(world, tiny_model_settings, monkeypatch):
    # It held no draft when it died, but its job waits on it.
    from generation import tasks

    sent = []
    monkeypatch.setattr(tasks.generate_drafts, "delay", lambda job_id: sent.append(job_id))
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    GenerationJob.objects.filter(pk=job.pk).update(
        status=GenerationJob.Status.RUNNING, worker_hostname="gpu@host"
    )
    sent.clear()
    assert services.worker_recover(hostname="gpu@other") == 0
    assert sent == []
    assert services.worker_recover(hostname="gpu@host") == 1
    assert sent == [job.pk]
    job.refresh_from_db()
    assert job.tasks_sent == 2  # the redelivery guard counts the extra task
    GenerationJob.objects.filter(pk=job.pk).update(status=GenerationJob.Status.SUCCEEDED)
    assert services.worker_recover(hostname="gpu@host") == 0


def test_control_characters_of_a_model_output_are_not_stored():
    # Random weights produce any byte; PostgreSQL refuses NUL in a text column.
    assert services.storable("Bon\x00 tri\x1bmestre.\nSuite\t!") == "Bon trimestre.\nSuite\t!"


# --- a class in one batch, each draft written as it arrives ---


def count_claims(monkeypatch) -> list[int]:
    """The size of every claim the runner makes."""
    sizes = []
    real_claim = runner._claim_batch

    def claim(*, job, hostname, size, **kwargs):
        sizes.append(size)
        return real_claim(job=job, hostname=hostname, size=size, **kwargs)

    monkeypatch.setattr(runner, "_claim_batch", claim)
    return sizes


def test_on_a_cpu_a_class_is_one_batch_and_each_draft_is_written_as_it_arrives(
    world, tiny_model_settings, monkeypatch
):
    from generation.services.versions import model_version_backend, model_version_ensure_active

    tiny_model_settings.APPRECIATION_BATCH_SIZE = 0  # automatic: the whole class
    tiny_model_settings.APPRECIATION_MAX_ATTEMPTS = 1  # every text is final as it comes
    for index in range(3):
        StudentFactory(school_class=world.school_class, last_name=f"Plus{index}")
    students = make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    sizes = count_claims(monkeypatch)
    # The backend of the version in service: the one the runner drafts with.
    backend = model_version_backend(version=model_version_ensure_active())
    real_generate = backend.generate
    calls, seen = [], []

    def watching(requests, *, seed=None, on_result=None, on_progress=None):
        calls.append(len(requests))

        def result_then_look(result):
            on_result(result)
            # Inside generate(): the draft is already stored, and its appreciation offered.
            draft = Draft.objects.get(pk=int(result.key))
            seen.append((draft.status, draft.text != "", GenerationJob.objects.get(pk=job.pk)))

        return real_generate(
            requests, seed=seed, on_result=result_then_look, on_progress=on_progress
        )

    monkeypatch.setattr(backend, "generate", watching)
    services.job_run(job_id=job.pk, hostname="cpu")
    assert calls == [len(students)]  # one generate() for the class
    assert sizes[0] == len(students)  # claimed at once (a second claim finds nothing)
    assert [(status, has_text) for status, has_text, _ in seen] == [
        (Draft.Status.GENERATED, True)
    ] * len(students)
    # The decoding step was recorded before the drafts came out.
    assert all(0 < job_row.progress_step <= 8 for _, _, job_row in seen)
    assert {job_row.progress_steps for _, _, job_row in seen} == {8}
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED


def test_the_batch_size_setting_still_wins_in_the_runner(world, tiny_model_settings, monkeypatch):
    tiny_model_settings.APPRECIATION_BATCH_SIZE = 2
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    sizes = count_claims(monkeypatch)
    services.job_run(job_id=job.pk, hostname="cpu")
    assert set(sizes) == {2}
    assert job.drafts.filter(status=Draft.Status.GENERATED).count() == 3


def test_the_runner_asks_the_backend_for_the_class_size(world, monkeypatch):
    from generation.backends import LocmemBackend

    class ClassSized(LocmemBackend):
        def batch_size(self, *, prompt_tokens, rows=None):
            self.asked = rows
            return rows

    for index in range(4):
        StudentFactory(school_class=world.school_class, last_name=f"Plus{index}")
    students = make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    sizes = count_claims(monkeypatch)
    backend = ClassSized()
    services.job_run(job_id=job.pk, hostname="w", backend=backend)
    assert backend.asked == len(students) == 7
    assert sizes[0] == 7


def test_a_cancel_during_the_batch_stops_it_within_a_step(world, monkeypatch):
    from generation.backends import LocmemBackend

    monkeypatch.setattr(runner, "PROGRESS_INTERVAL_SECONDS", 0)
    for index in range(4):
        StudentFactory(school_class=world.school_class, last_name=f"Plus{index}")
    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    handed_out = []

    class CancelAfterTheFirst(LocmemBackend):
        def batch_size(self, *, prompt_tokens, rows=None):
            return rows

        def generate(self, requests, *, seed=None, on_result=None, on_progress=None):
            def result_then_cancel(result):
                handed_out.append(result.key)
                on_result(result)
                if len(handed_out) == 1:
                    services.job_cancel(job=job, user=world.teacher)  # the teacher clicks

            return super().generate(
                requests, seed=seed, on_result=result_then_cancel, on_progress=on_progress
            )

    services.job_run(job_id=job.pk, hostname="w", backend=CancelAfterTheFirst())
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.CANCELLED
    # The first draft was written before the cancel; the next step saw it and stopped.
    assert len(handed_out) == 1
    assert job.drafts.filter(status=Draft.Status.GENERATED).count() == 1
    assert job.drafts.filter(status=Draft.Status.CANCELLED).count() == 6


def test_progress_counts_written_drafts_and_the_batchs_steps(world):
    from generation import selectors

    make_ready(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    first, *others = job.drafts.order_by("pk")
    Draft.objects.filter(pk=first.pk).update(status=Draft.Status.GENERATED)
    Draft.objects.filter(pk__in=[d.pk for d in others]).update(status=Draft.Status.RUNNING)
    GenerationJob.objects.filter(pk=job.pk).update(
        status=GenerationJob.Status.RUNNING, progress_step=45, progress_steps=90
    )
    job.refresh_from_db()
    progress = selectors.job_progress(job=job)
    # Drafts being written are not done; half of their steps moves the bar by one draft.
    assert (progress["done"], progress["running"], progress["total"]) == (1, 2, 3)
    assert progress["value"] == 2.0
