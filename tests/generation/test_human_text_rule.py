"""The rule above all: the model never replaces a human's text.

For every state an appréciation can be in and every way a new draft can arrive (a class
generation, « Régénérer » on one student, a worker delivering the same task again), the text a
human wrote is still there afterwards, and the new draft is offered beside it.
"""

import pytest
from django.core.exceptions import ValidationError

from generation import selectors, services
from generation.backends import LocmemBackend
from generation.models import Appreciation, Draft, FinalTexts, GenerationJob
from tests.factories import TermAssessmentFactory

pytestmark = pytest.mark.django_db

HUMAN = "Un trimestre sérieux ; l'oral progresse, il faut maintenant approfondir les leçons."


def ready_student(world):
    student = world.school_class.students.order_by("pk").first()
    TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
    return student


def run_class(world, backend, **kwargs):
    job = services.job_create(
        assignment=world.assignment, term=world.term, user=world.teacher, **kwargs
    )
    services.job_run(job_id=job.pk, hostname="w1", backend=backend)
    return job


def put_in_state(world, student, state, backend):
    """An appréciation in `state`, whose text is HUMAN unless the state is `generated`."""
    run_class(world, backend)
    appreciation = Appreciation.objects.get(student=student)
    if state == "generated":
        return appreciation
    appreciation = services.draft_validate(
        assignment=world.assignment,
        term=world.term,
        student=student,
        user=world.teacher,
        text=HUMAN,
        version=appreciation.version,
    )
    if state == "returned":
        appreciation = services.appreciation_return(
            appreciation=appreciation,
            user=world.head,
            comment="Trop vague.",
            version=appreciation.version,
        )
    elif state == "approved":
        appreciation = services.appreciation_approve(
            appreciation=appreciation, user=world.head, version=appreciation.version
        )
    return appreciation


def arrive(world, student, way, backend):
    if way == "class":
        run_class(world, backend, finals=FinalTexts.OFFER)
    elif way == "regenerate":
        run_class(world, backend, students=[student])
    elif way == "redelivery":
        # The last job's task comes back (a worker died after acknowledging it late): its
        # draft is claimed again by a new worker, which writes it once more.
        job = run_class(world, backend, students=[student])
        Draft.objects.filter(job=job).update(status=Draft.Status.RUNNING, claimed_by="dead")
        GenerationJob.objects.filter(pk=job.pk).update(status=GenerationJob.Status.RUNNING)
        services.job_run(job_id=job.pk, hostname="dead", backend=backend)
    else:  # pragma: no cover
        raise AssertionError(way)


@pytest.mark.parametrize("way", ["class", "regenerate", "redelivery"])
@pytest.mark.parametrize("state", ["validated", "returned", "approved"])
def test_a_new_draft_never_replaces_a_human_text(world, state, way):
    backend = LocmemBackend()
    student = ready_student(world)
    before = put_in_state(world, student, state, backend)
    assert before.text == HUMAN

    arrive(world, student, way, backend)

    after = Appreciation.objects.select_related("offered_draft").get(pk=before.pk)
    assert after.text == HUMAN
    assert after.status == state
    assert after.validated_by == world.teacher
    # The new draft is there, beside the human's text, for the teacher to choose.
    assert after.offered_draft is not None
    assert after.offered_draft.text == backend.sent[-1][1]
    assert after.offered_draft.text != HUMAN


@pytest.mark.parametrize("way", ["class", "regenerate", "redelivery"])
def test_a_new_draft_replaces_an_unreviewed_draft_and_keeps_the_old_one(world, way):
    backend = LocmemBackend()
    student = ready_student(world)
    first = put_in_state(world, student, "generated", backend)
    first_draft = first.draft

    arrive(world, student, way, backend)

    after = Appreciation.objects.get(pk=first.pk)
    assert after.status == Appreciation.Status.GENERATED
    assert after.draft_id != first_draft.pk
    assert after.offered_draft is None
    row = selectors.review_rows(assignment=world.assignment, term=world.term, students=[student])[0]
    assert first_draft.pk in [d.pk for d in row.history]


def test_class_generation_skips_the_human_texts_by_default(world):
    backend = LocmemBackend()
    student = ready_student(world)
    put_in_state(world, student, "returned", backend)
    with pytest.raises(ValidationError, match="validées ou renvoyées"):
        services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    after = Appreciation.objects.get(student=student)
    assert after.offered_draft is None


def test_validating_the_offered_draft_adopts_it(world):
    backend = LocmemBackend()
    student = ready_student(world)
    put_in_state(world, student, "validated", backend)
    arrive(world, student, "regenerate", backend)
    appreciation = Appreciation.objects.get(student=student)
    offered = appreciation.offered_draft
    validated = services.draft_validate(
        assignment=world.assignment,
        term=world.term,
        student=student,
        user=world.teacher,
        text=offered.text,
        version=appreciation.version,
        draft_id=offered.pk,
    )
    assert validated.text == offered.text
    assert validated.draft_id == offered.pk
    assert validated.offered_draft_id is None
    assert validated.feedback.order_by("-pk").first().draft_id == offered.pk


def test_dismissing_the_offered_draft_keeps_the_human_text(world):
    backend = LocmemBackend()
    student = ready_student(world)
    put_in_state(world, student, "validated", backend)
    arrive(world, student, "regenerate", backend)
    appreciation = Appreciation.objects.get(student=student)
    services.appreciation_dismiss_offer(appreciation=appreciation, user=world.teacher)
    after = Appreciation.objects.get(pk=appreciation.pk)
    assert after.offered_draft_id is None
    assert (after.text, after.status) == (HUMAN, Appreciation.Status.VALIDATED)


def test_human_texts_are_in_the_history_with_who_and_when(world):
    backend = LocmemBackend()
    student = ready_student(world)
    put_in_state(world, student, "returned", backend)
    appreciation = Appreciation.objects.get(student=student)
    services.draft_validate(
        assignment=world.assignment,
        term=world.term,
        student=student,
        user=world.teacher,
        text="Un second texte, écrit après le renvoi du coordonnateur.",
        version=appreciation.version,
    )
    row = selectors.review_rows(assignment=world.assignment, term=world.term, students=[student])[0]
    human = [entry for entry in row.text_history if entry.kind == "human"]
    assert [entry.text for entry in human] == [HUMAN]
    assert human[0].author == world.teacher
    assert human[0].at is not None


def test_no_draft_is_written_after_the_job_says_cancelled(world):
    """« Annuler » while a batch is on the worker: that batch's drafts are not written."""
    student = ready_student(world)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)

    class CancelledMidBatch(LocmemBackend):
        def generate(self, requests, *, seed=None, **callbacks):
            services.job_cancel(job=job, user=world.teacher)  # the teacher clicks now
            return super().generate(requests, seed=seed, **callbacks)

    services.job_run(job_id=job.pk, hostname="w1", backend=CancelledMidBatch())
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.CANCELLED
    assert not Draft.objects.filter(job=job, status=Draft.Status.GENERATED).exists()
    assert not Appreciation.objects.filter(student=student).exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_on_a_real_worker_every_human_text_survives_every_arrival(world, celery_worker):
    """The real worker and model: a class generation that offers, then « Régénérer » on
    each human text, then the same task delivered again."""
    from generation.tasks import generate_drafts
    from tests.conftest import wait_for

    students = list(world.school_class.students.order_by("pk"))
    for student in students:
        TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    wait_for(lambda: GenerationJob.objects.get(pk=job.pk).status == "succeeded")
    human = {}
    for student, state in zip(students, ("validated", "returned", "approved"), strict=True):
        appreciation = Appreciation.objects.get(student=student)
        text = f"{HUMAN} ({state})"
        appreciation = services.draft_validate(
            assignment=world.assignment,
            term=world.term,
            student=student,
            user=world.teacher,
            text=text,
            version=appreciation.version,
            confirmed=True,
        )
        if state == "returned":
            services.appreciation_return(
                appreciation=appreciation,
                user=world.head,
                comment="Non.",
                version=appreciation.version,
            )
        elif state == "approved":
            services.appreciation_approve(
                appreciation=appreciation, user=world.head, version=appreciation.version
            )
        human[student.pk] = (text, state)

    def all_done():
        return not GenerationJob.objects.filter(status__in=GenerationJob.ACTIVE_STATUSES).exists()

    job = services.job_create(
        assignment=world.assignment, term=world.term, user=world.teacher, finals="offer"
    )
    wait_for(all_done)
    for student in students:
        job = services.job_create(
            assignment=world.assignment, term=world.term, user=world.teacher, students=[student]
        )
        wait_for(all_done)
    generate_drafts.delay(job.pk)  # the last task, delivered again
    wait_for(all_done)

    for student in students:
        appreciation = Appreciation.objects.get(student=student)
        assert (appreciation.text, appreciation.status) == human[student.pk]
        assert appreciation.offered_draft is not None
        assert appreciation.offered_draft.text != appreciation.text
    # Three offers each (class, « Régénérer »), never a duplicate draft in a job.
    assert Draft.objects.filter(job__requested_by=world.teacher).count() == 3 + 3 + 3
