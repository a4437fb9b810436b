"""The progress poll's window never loses a draft a worker commits late.

A worker stamps generated_at, then commits. A poll that runs in between does not see the
draft yet; if its window ended at its own clock, the next poll would start after the stamp and
the draft would never reach the page (seen in the browser tests: a row left empty).
"""

import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from generation import services
from generation.models import Draft, GenerationJob
from generation.prompts import PROMPT_VERSION
from tests.factories import TermAssessmentFactory

HX = {"HTTP_HX_REQUEST": "true"}


def running_draft(job, student, *, claimed_at):
    TermAssessmentFactory(student=student, term=job.term, subject=job.assignment.subject)
    return Draft.objects.create(
        job=job,
        student=student,
        subject=job.assignment.subject,
        term=job.term,
        status=Draft.Status.RUNNING,
        claimed_by="gpu@test",
        claimed_at=claimed_at,
        prompt_messages=[{"role": "user", "content": "Veuillez rédiger…"}],
        prompt_version=PROMPT_VERSION,
    )


def poll(client, job, since):
    url = reverse("generation:job_progress", args=[job.pk])
    body = client.get(url, {"since": since}, **HX).content.decode()
    arrived = set(re.findall(r'id="student-(\d+)"[^>]*hx-swap-oob="true"', body))
    next_since = re.search(r"since=([^\"&]+)", body)
    return arrived, next_since.group(1).replace("%3A", ":").replace("%2B", "+")


def test_a_draft_committed_after_a_poll_but_stamped_before_it_comes_with_the_next(world, login):
    client = login(world.teacher)
    start = timezone.now() - timedelta(seconds=30)
    job = GenerationJob.objects.create(
        assignment=world.assignment,
        term=world.term,
        requested_by=world.teacher,
        status=GenerationJob.Status.RUNNING,
        heartbeat_at=timezone.now(),
    )
    student = world.school_class.students.first()
    draft = running_draft(job, student, claimed_at=timezone.now() - timedelta(seconds=2))

    arrived, since = poll(client, job, start.isoformat())
    assert arrived == set()

    # The worker's write: stamped one second ago (before that poll), committed only now.
    Draft.objects.filter(pk=draft.pk).update(
        status=Draft.Status.GENERATED,
        text="Trimestre sérieux.",
        generated_at=timezone.now() - timedelta(seconds=1),
    )
    draft.refresh_from_db()
    services.appreciation_propose(draft=draft)

    arrived, _ = poll(client, job, since)
    assert arrived == {str(student.pk)}
