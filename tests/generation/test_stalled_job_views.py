"""GET writes nothing: a stalled job is the periodic recovery's business, not a page view's."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from generation import services
from generation.models import Appreciation, Draft, GenerationJob
from generation.services import runner
from tests.factories import TermAssessmentFactory

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def snapshot() -> tuple:
    return (
        list(GenerationJob.objects.order_by("pk").values()),
        list(Draft.objects.order_by("pk").values()),
        list(Appreciation.objects.order_by("pk").values()),
    )


def test_pages_of_a_stalled_job_change_no_row(world, login, settings, monkeypatch):
    from generation import tasks

    monkeypatch.setattr(tasks.generate_drafts, "delay_on_commit", lambda job_id: None)
    for student in world.school_class.students.all():
        TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    runner._claim_batch(job=job, hostname="gpu@gone", size=2)
    long_ago = timezone.now() - timedelta(seconds=settings.APPRECIATION_STALL_SECONDS * 10)
    Draft.objects.filter(job=job, status=Draft.Status.RUNNING).update(claimed_at=long_ago)
    GenerationJob.objects.filter(pk=job.pk).update(
        status=GenerationJob.Status.RUNNING, heartbeat_at=long_ago, sent_at=long_ago
    )
    client = login(world.teacher)
    before = snapshot()
    with CaptureQueriesContext(connection) as queries:
        review = client.get(reverse("generation:review", args=[world.assignment.pk, world.term.pk]))
        progress = client.get(reverse("generation:job_progress", args=[job.pk]), **HX)
    assert review.status_code == 200 and progress.status_code in (200, 286)
    assert snapshot() == before
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}
        and "generation_" in q["sql"]
    ]
    assert writes == []
    # What heals it is the periodic recovery, without anyone's click.
    assert services.jobs_recover_stalled() == 1
