"""The teacher's evening: generate a class on a real worker, follow it, review, validate."""

import re
import time

import pytest
from django.urls import reverse
from django.utils.html import escape

from generation.models import Appreciation, Draft, Feedback, GenerationJob
from tests.factories import TermAssessmentFactory
from tests.generation.test_review import DRAFT_TEXT, make_draft

HX = {"HTTP_HX_REQUEST": "true"}


def make_ready(world):
    for student in world.school_class.students.all():
        TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)


def review_url(world):
    return reverse("generation:review", args=[world.assignment.pk, world.term.pk])


def validate_url(world, student):
    return reverse("generation:validate", args=[world.assignment.pk, world.term.pk, student.pk])


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_generate_follow_and_review_a_class(world, login, celery_worker):
    make_ready(world)
    client = login(world.teacher)
    page = client.get(review_url(world)).content.decode()
    assert "Générer les appréciations" in page
    assert "3 élève(s) aux saisies complètes" in page

    start = reverse("generation:job_start", args=[world.assignment.pk, world.term.pk])
    panel = client.post(start, **HX).content.decode()
    assert 'id="job-progress"' in panel and 'hx-trigger="every 2s"' in panel

    # Poll as htmx does until the server says stop (286); rows arrive out of band.
    poll = re.search(r'hx-get="([^"]+)"', panel).group(1).replace("&amp;", "&")
    arrived = set()
    for _ in range(300):
        response = client.get(poll, **HX)
        body = response.content.decode()
        arrived |= set(re.findall(r'id="student-(\d+)"[^>]*hx-swap-oob="true"', body))
        if response.status_code == 286:
            break
        poll = re.search(r'hx-get="([^"]+)"', body).group(1).replace("&amp;", "&")
        time.sleep(0.2)
    assert response.status_code == 286, "polling never stopped"
    assert "3 / 3" in body
    assert "hx-trigger" not in body  # the final fragment polls no more
    students = list(world.school_class.students.all())
    assert arrived == {str(s.pk) for s in students}

    page = client.get(review_url(world)).content.decode()
    assert "modèle de test aléatoire" in page  # the test model says so plainly
    assert "Voir la demande envoyée au modèle" in page

    # Validate one as is, one edited. The test model's noise fails the checks (grammar,
    # spelling...) more often than not: the teacher confirms it (« Valider quand même »).
    first, second = students[0], students[1]
    a1 = Appreciation.objects.get(student=first)
    row = client.post(
        validate_url(world, first),
        # The test model's noise may fail a check: the teacher confirms, knowing it.
        {
            "text": a1.text or "Texte.",
            "version": a1.version,
            "seconds_spent": "12",
            "confirmed": "on",
        },
        **HX,
    ).content.decode()
    if "Valider quand même" in row:
        row = client.post(
            validate_url(world, first),
            {"text": a1.text or "Texte.", "version": a1.version, "confirmed": "1"},
            **HX,
        ).content.decode()
    assert "Validée" in row
    a2 = Appreciation.objects.get(student=second)
    client.post(
        validate_url(world, second),
        {"text": "Trimestre encourageant, à poursuivre.", "version": a2.version},
        **HX,
    )
    assert Appreciation.objects.filter(status=Appreciation.Status.VALIDATED).count() == 2
    edited = Feedback.objects.get(appreciation__student=second)
    assert edited.edited and edited.final_text == "Trimestre encourageant, à poursuivre."
    assert edited.draft_text == Draft.objects.get(student=second).text


@pytest.mark.django_db
def test_second_click_shows_the_running_job(world, login, tiny_model_settings):
    make_ready(world)
    client = login(world.teacher)
    start = reverse("generation:job_start", args=[world.assignment.pk, world.term.pk])
    client.post(start, **HX)
    body = client.post(start, **HX).content.decode()
    assert "déjà en cours" in body
    assert GenerationJob.objects.count() == 1


@pytest.mark.django_db
def test_cancel_then_resume(world, login, tiny_model_settings):
    make_ready(world)
    client = login(world.teacher)
    client.post(reverse("generation:job_start", args=[world.assignment.pk, world.term.pk]))
    job = GenerationJob.objects.get()
    response = client.post(reverse("generation:job_cancel", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.CANCELLED
    page = client.get(review_url(world)).content.decode()
    assert "Génération annulée" in page and "Reprendre" in page
    client.post(reverse("generation:job_retry", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.QUEUED


@pytest.mark.django_db
def test_failed_job_shows_french_message_and_retry(world, login, tiny_model_settings):
    make_ready(world)
    client = login(world.teacher)
    client.post(reverse("generation:job_start", args=[world.assignment.pk, world.term.pk]))
    job = GenerationJob.objects.get()
    GenerationJob.objects.filter(pk=job.pk).update(
        status=GenerationJob.Status.FAILED,
        error_message="Le modèle n'a pas pu être chargé.",
        error_detail="OSError: no such file",
    )
    page = client.get(review_url(world)).content.decode()
    assert "Le modèle n&#x27;a pas pu être chargé." in page
    assert "Réessayer" in page
    assert "OSError" not in page  # the English reason is for the logs, not the teacher
    progress = client.get(reverse("generation:job_progress", args=[job.pk]), **HX)
    assert progress.status_code == 286


@pytest.mark.django_db
def test_conflict_shows_current_text_and_keeps_mine(world, login):
    student = world.school_class.students.first()
    appreciation = make_draft(world, student)
    client = login(world.teacher)
    stale = appreciation.version
    client.post(validate_url(world, student), {"text": "Version A.", "version": stale}, **HX)
    body = client.post(
        validate_url(world, student), {"text": "Version B.", "version": stale}, **HX
    ).content.decode()
    assert "modifiée entre-temps" in body
    assert "Version A." in body  # the current text, in the textarea
    assert "Version B." in body  # mine, shown so nothing is lost
    assert Appreciation.objects.get().text == "Version A."


@pytest.mark.django_db
def test_closed_term_review_is_read_only(world, login):
    student = world.school_class.students.first()
    appreciation = make_draft(world, student)
    world.term.is_closed = True
    world.term.save()
    client = login(world.teacher)
    page = client.get(review_url(world)).content.decode()
    assert "Ce trimestre est clos" in page
    assert "<textarea" not in page and "Générer les appréciations" not in page
    body = client.post(
        validate_url(world, student), {"text": "X.", "version": appreciation.version}, **HX
    ).content.decode()
    assert "clos" in body
    assert Appreciation.objects.get().status == Appreciation.Status.GENERATED


@pytest.mark.django_db
def test_department_head_returns_and_approves(world, login):
    students = list(world.school_class.students.all())
    client = login(world.teacher)
    for student in students[:2]:
        appreciation = make_draft(world, student)
        client.post(
            validate_url(world, student), {"text": DRAFT_TEXT, "version": appreciation.version}
        )
    head = login(world.head)
    queue = head.get(reverse("generation:head_queue")).content.decode()
    assert "2nde 3" in queue
    page = head.get(
        reverse("generation:head_review", args=[world.assignment.pk, world.term.pk])
    ).content.decode()
    assert "Tout approuver (2)" in page
    first = Appreciation.objects.get(student=students[0])
    body = head.post(
        reverse("generation:return", args=[first.pk]),
        {"comment": "Précisez la méthode.", "version": first.version},
        **HX,
    ).content.decode()
    assert "Renvoyée" in body
    head.post(reverse("generation:approve_all", args=[world.assignment.pk, world.term.pk]))
    statuses = dict(Appreciation.objects.values_list("student_id", "status"))
    assert statuses == {students[0].pk: "returned", students[1].pk: "approved"}
    # The teacher sees the comment and must validate again.
    teacher_page = login(world.teacher).get(review_url(world)).content.decode()
    assert "Précisez la méthode." in teacher_page


@pytest.mark.django_db
def test_feedback_thumbs(world, login):
    student = world.school_class.students.first()
    appreciation = make_draft(world, student)
    client = login(world.teacher)
    client.post(validate_url(world, student), {"text": DRAFT_TEXT, "version": appreciation.version})
    feedback = Feedback.objects.get()
    body = client.post(
        reverse("generation:feedback_rate", args=[feedback.pk]),
        {"rating": "down", "reason": "too_long"},
        **HX,
    ).content.decode()
    assert "Merci" in body
    feedback.refresh_from_db()
    assert (feedback.rating, feedback.reason) == ("down", "too_long")
    other = login(world.other_teacher).post(
        reverse("generation:feedback_rate", args=[feedback.pk]), {"rating": "up"}
    )
    assert other.status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["other_teacher", "head", "admin", "foreign_teacher"])
def test_review_pages_are_the_teachers_own(world, login, who):
    student = world.school_class.students.first()
    appreciation = make_draft(world, student)
    job = GenerationJob.objects.get()
    client = login(getattr(world, who))
    assert client.get(review_url(world)).status_code == 404
    assert (
        client.post(
            validate_url(world, student), {"text": "X", "version": appreciation.version}
        ).status_code
        == 404
    )
    for name in ("job_progress",):
        assert client.get(reverse(f"generation:{name}", args=[job.pk])).status_code == 404
    for name in ("job_cancel", "job_retry"):
        assert client.post(reverse(f"generation:{name}", args=[job.pk])).status_code == 404
    assert Appreciation.objects.get().status == Appreciation.Status.GENERATED


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["teacher", "other_teacher", "admin", "foreign_teacher"])
def test_head_pages_need_the_subjects_head(world, login, who):
    student = world.school_class.students.first()
    appreciation = make_draft(world, student)
    client = login(getattr(world, who))
    assert (
        client.get(
            reverse("generation:head_review", args=[world.assignment.pk, world.term.pk])
        ).status_code
        == 404
    )
    assert (
        client.post(
            reverse("generation:approve", args=[appreciation.pk]), {"version": appreciation.version}
        ).status_code
        == 404
    )
    assert (
        client.post(
            reverse("generation:return", args=[appreciation.pk]),
            {"version": appreciation.version, "comment": "x"},
        ).status_code
        == 404
    )


@pytest.mark.django_db
def test_quick_draft_form_creates_a_pseudonymous_request(world, login, tiny_model_settings):
    from generation.models import QuickDraft

    client = login(world.teacher)
    page = client.get(reverse("generation:quick_draft")).content.decode()
    assert 'type="range"' in page
    response = client.post(
        reverse("generation:quick_draft"),
        {
            "subject": "Histoire-Géographie",
            "level": world.school_class.level.pk,
            "trimester": "2",
            "average_1": "12",
            "average_2": "13.5",
            "average_3": "10",
            "behaviour": "7",
            "participation": "6",
            "work": "8",
        },
    )
    assert response.status_code == 302
    quick = QuickDraft.objects.get()
    assert (
        "13.5 de moyenne ce trimestre et 12 au premier trimestre"
        in (quick.prompt_messages[1]["content"])
    )
    other = login(world.other_teacher)
    assert other.get(reverse("generation:quick_draft_result", args=[quick.pk])).status_code == 404


@pytest.mark.django_db
def test_quick_draft_runs_on_the_model_and_shows_flags(world, login, tiny_model_settings):
    from generation import services
    from generation.models import QuickDraft
    from generation.prompts import PromptInputs

    quick = services.quick_draft_create(
        user=world.teacher,
        inputs=PromptInputs("Histoire-Géographie", 1, (12, None, None), 7, 6, 8),
        level_name="Seconde",
    )
    services.quick_draft_run(quick_draft_id=quick.pk)
    quick.refresh_from_db()
    assert quick.status == QuickDraft.Status.DONE
    assert 1 <= quick.attempts <= tiny_model_settings.APPRECIATION_MAX_ATTEMPTS
    assert quick.is_test_model
    client = login(world.teacher)
    response = client.get(reverse("generation:quick_draft_result", args=[quick.pk]), **HX)
    assert response.status_code == 286  # done: the page stops polling
    body = response.content.decode()
    assert "modèle de test aléatoire" in body
    for flag in quick.flags:
        # Escaped as the page writes it: "L'appréciation" is "L&#x27;appréciation" there.
        assert escape(flag["message"].split(" ")[0]) in body


@pytest.mark.django_db
def test_regenerate_one_student_keeps_the_earlier_draft(world, login, tiny_model_settings):
    from generation import services

    student = world.school_class.students.first()
    appreciation = make_draft(world, student, text="Premier brouillon.")
    GenerationJob.objects.update(status=GenerationJob.Status.SUCCEEDED)
    client = login(world.teacher)
    client.post(
        reverse("generation:job_start", args=[world.assignment.pk, world.term.pk]),
        {"student": student.pk},
        **HX,
    )
    job = GenerationJob.objects.get(status=GenerationJob.Status.QUEUED)
    assert list(job.drafts.values_list("student_id", flat=True)) == [student.pk]
    services.job_run(job_id=job.pk, hostname="test")
    appreciation.refresh_from_db()
    assert appreciation.draft.job == job
    page = client.get(review_url(world)).content.decode()
    assert "Textes précédents (1)" in page
    assert "Premier brouillon." in page


@pytest.mark.django_db
def test_progress_shows_the_batchs_decoding_step_in_french(world, login, tiny_model_settings):
    make_ready(world)
    client = login(world.teacher)
    client.post(reverse("generation:job_start", args=[world.assignment.pk, world.term.pk]))
    job = GenerationJob.objects.get()
    first, *others = job.drafts.order_by("pk")
    Draft.objects.filter(pk=first.pk).update(status=Draft.Status.GENERATED, text=DRAFT_TEXT)
    Draft.objects.filter(pk__in=[d.pk for d in others]).update(status=Draft.Status.RUNNING)
    GenerationJob.objects.filter(pk=job.pk).update(
        status=GenerationJob.Status.RUNNING, progress_step=30, progress_steps=90
    )
    body = client.get(reverse("generation:job_progress", args=[job.pk]), **HX).content.decode()
    assert "Rédaction de 2 brouillons : étape 30 sur 90." in body
    # The bar counts the written draft and a third of the two being written.
    assert 'max="3" value="1.67"' in body
    assert "<strong>1 / 3</strong>" in body
    # Finished: no step line.
    GenerationJob.objects.filter(pk=job.pk).update(status=GenerationJob.Status.SUCCEEDED)
    Draft.objects.filter(job=job).update(status=Draft.Status.GENERATED)
    body = client.get(reverse("generation:job_progress", args=[job.pk]), **HX).content.decode()
    assert "étape" not in body
    assert 'max="3" value="3"' in body
