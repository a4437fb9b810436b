"""The review page when a human text exists: the offered draft, the history, confirmations,
the counters that stay true, and the parameters that are checked."""

import pytest
from django.urls import reverse

from generation import services
from generation.backends import LocmemBackend
from generation.models import Appreciation, Feedback, GenerationJob
from tests.factories import TermAssessmentFactory

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
HUMAN = "Un trimestre sérieux ; l'oral progresse, il faut maintenant approfondir les leçons."


def urls(world, student=None):
    args = [world.assignment.pk, world.term.pk]
    return {
        "review": reverse("generation:review", args=args),
        "start": reverse("generation:job_start", args=args),
        "head": reverse("generation:head_review", args=args),
        **(
            {
                "validate": reverse("generation:validate", args=[*args, student.pk]),
                "dismiss": reverse("generation:offer_dismiss", args=[*args, student.pk]),
            }
            if student
            else {}
        ),
    }


@pytest.fixture
def drafted(world):
    """Every student ready and drafted by the in-memory backend."""
    for student in world.school_class.students.all():
        TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
    backend = LocmemBackend()
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    services.job_run(job_id=job.pk, hostname="w", backend=backend)
    return backend


def first_student(world):
    return world.school_class.students.order_by("pk").first()


def validate(client, world, student, text, **extra):
    appreciation = Appreciation.objects.filter(student=student).first()
    data = {"text": text, "version": appreciation.version if appreciation else 0, **extra}
    return client.post(urls(world, student)["validate"], data, **HX).content.decode()


def test_regenerate_a_validated_text_asks_and_offers_beside(world, login, drafted):
    student = first_student(world)
    client = login(world.teacher)
    validate(client, world, student, HUMAN)
    page = client.get(urls(world)["review"]).content.decode()
    assert "Cette appréciation est validée. Un nouveau brouillon sera proposé à côté" in page

    client.post(urls(world)["start"], {"student": student.pk}, **HX)
    job = GenerationJob.objects.get(status=GenerationJob.Status.QUEUED)
    services.job_run(job_id=job.pk, hostname="w", backend=drafted)

    page = client.get(urls(world)["review"]).content.decode()
    appreciation = Appreciation.objects.get(student=student)
    assert appreciation.status == Appreciation.Status.VALIDATED
    assert f">{HUMAN}</textarea>" in page.replace("&#x27;", "'")
    assert "Nouveau brouillon proposé" in page
    assert "Utiliser ce brouillon" in page and "Garder mon texte" in page

    client.post(urls(world, student)["dismiss"], **HX)
    appreciation.refresh_from_db()
    assert appreciation.offered_draft is None and appreciation.text == HUMAN


def test_class_generation_says_what_it_will_do_with_the_counts(world, login, drafted):
    students = list(world.school_class.students.order_by("pk"))
    client = login(world.teacher)
    validate(client, world, students[0], HUMAN)
    page = client.get(urls(world)["review"]).content.decode()
    # 3 ready: 2 model drafts to replace, 1 validated text.
    assert "2 brouillon(s) pas encore validé(s)" in page
    assert "1 appréciation(s) validée(s) ou renvoyée(s)" in page
    assert "Générer aussi un brouillon à côté des 1 appréciation(s) validée(s)" in page
    assert 'hx-confirm="2 brouillon(s) vont être rédigés, dont 2 à la place' in page

    client.post(urls(world)["start"], {"finals": "skip"}, **HX)
    job = GenerationJob.objects.get(status=GenerationJob.Status.QUEUED)
    assert set(job.drafts.values_list("student_id", flat=True)) == {s.pk for s in students[1:]}


def test_human_texts_are_restorable_from_the_history(world, login, drafted):
    student = first_student(world)
    client = login(world.teacher)
    validate(client, world, student, HUMAN)
    validate(client, world, student, "Une autre version, plus courte et plus précise.")
    page = client.get(urls(world)["review"]).content.decode().replace("&#x27;", "'")
    assert "Textes précédents" in page
    assert f'data-fill-text="{HUMAN}"' in page
    assert f"Validé par {world.teacher}" in page


def test_a_flagged_text_asks_for_a_confirmation_that_names_the_problem(world, login, drafted):
    student = first_student(world)
    client = login(world.teacher)
    flagged = "Tu as obtenu 15 de moyenne, bravo pour ce trimestre."
    body = validate(client, world, student, flagged)
    assert "À vérifier avant de valider" in body
    assert "Valider quand même" in body
    assert "note" in body.lower() or "chiffre" in body.lower()
    assert not Feedback.objects.exists()
    assert Appreciation.objects.get(student=student).status == Appreciation.Status.GENERATED

    validate(client, world, student, flagged, confirmed="1")
    appreciation = Appreciation.objects.get(student=student)
    assert (appreciation.status, appreciation.text) == (Appreciation.Status.VALIDATED, flagged)


def test_a_text_over_the_schools_limit_cannot_be_validated(world, login, drafted):
    world.school.appreciation_max_chars = 60
    world.school.save()
    student = first_student(world)
    client = login(world.teacher)
    body = validate(client, world, student, HUMAN, confirmed="1")
    assert "la limite du bulletin fixée par l'établissement est de 60" in body.replace(
        "&#x27;", "'"
    )
    assert Appreciation.objects.get(student=student).status == Appreciation.Status.GENERATED


def test_too_long_or_nul_texts_get_their_own_message(world, login, drafted):
    student = first_student(world)
    client = login(world.teacher)
    body = validate(client, world, student, "mot " * 600)
    assert "trop longue (2 000 caractères au plus)" in body
    body = validate(client, world, student, "Bon\x00 trimestre")
    assert "Formulaire incomplet" not in body
    assert 'role="alert"' in body


def test_stale_flags_of_a_draft_are_not_shown_over_the_teachers_text(world, login, drafted):
    student = first_student(world)
    appreciation = Appreciation.objects.get(student=student)
    appreciation.draft.flags = [{"code": "grade", "message": "Drapeau du brouillon."}]
    appreciation.draft.save()
    client = login(world.teacher)
    assert "Drapeau du brouillon." in client.get(urls(world)["review"]).content.decode()
    validate(client, world, student, HUMAN)
    assert "Drapeau du brouillon." not in client.get(urls(world)["review"]).content.decode()


def test_the_validated_counter_follows_each_validation(world, login, drafted):
    student = first_student(world)
    client = login(world.teacher)
    body = validate(client, world, student, HUMAN)
    assert 'id="final-counter" hx-swap-oob="true"' in body
    assert "<strong>1</strong> / 3 appréciations validées" in body


def test_bad_student_parameter_is_a_french_message_not_a_500(world, login, drafted):
    client = login(world.teacher)
    for junk in ("abc", "1e5", "-3", ""):
        response = client.post(urls(world)["start"], {"student": junk, "finals": "skip"}, **HX)
        assert response.status_code in (200, 404)
    response = client.post(urls(world)["start"], {"finals": "everything"}, **HX)
    assert response.status_code == 200
    assert "Demande incomplète" in response.content.decode()


def test_head_pages_never_attribute_a_model_text_to_the_teacher(world, login, drafted):
    students = list(world.school_class.students.order_by("pk"))
    teacher = login(world.teacher)
    validate(teacher, world, students[0], HUMAN)
    appreciation = Appreciation.objects.get(student=students[0])
    services.appreciation_return(
        appreciation=appreciation,
        user=world.head,
        comment="À préciser.",
        version=appreciation.version,
    )
    # A class generation that offers: the returned text stays the teacher's.
    job = services.job_create(
        assignment=world.assignment, term=world.term, user=world.teacher, finals="offer"
    )
    services.job_run(job_id=job.pk, hostname="w", backend=drafted)
    head = login(world.head)
    page = head.get(urls(world)["head"]).content.decode().replace("&#x27;", "'")
    assert HUMAN in page
    assert page.count(f"validée par {world.teacher}") == 1  # the returned human text only
    assert page.count("brouillon du modèle, pas encore validé par l'enseignant") == 2


def test_approve_all_asks_and_its_count_follows_each_approval(world, login, drafted):
    students = list(world.school_class.students.order_by("pk"))
    teacher = login(world.teacher)
    for student in students:
        validate(teacher, world, student, HUMAN)
    head = login(world.head)
    page = head.get(urls(world)["head"]).content.decode()
    assert "Tout approuver (3)" in page and "hx-confirm=" in page
    appreciation = Appreciation.objects.get(student=students[0])
    body = head.post(
        reverse("generation:approve", args=[appreciation.pk]),
        {"version": appreciation.version},
        **HX,
    ).content.decode()
    assert 'id="approve-all" hx-swap-oob="true"' in body
    assert "Tout approuver (2)" in body
    response = head.post(
        reverse("generation:approve_all", args=[world.assignment.pk, world.term.pk]), **HX
    )
    assert response.headers["HX-Redirect"] == urls(world)["head"]
    assert Appreciation.objects.filter(status=Appreciation.Status.APPROVED).count() == 3


def test_returned_appreciations_are_announced_on_the_dashboard(world, login, drafted):
    student = first_student(world)
    teacher = login(world.teacher)
    dashboard = reverse("classes:dashboard") + f"?trimestre={world.term.pk}"
    assert "renvoyées par le coordonnateur" not in teacher.get(dashboard).content.decode()
    validate(teacher, world, student, HUMAN)
    appreciation = Appreciation.objects.get(student=student)
    services.appreciation_return(
        appreciation=appreciation,
        user=world.head,
        comment="À préciser.",
        version=appreciation.version,
    )
    page = teacher.get(dashboard).content.decode()
    assert "Appréciations renvoyées par le coordonnateur" in page
    assert "1 appréciation(s) à revoir" in page
    assert urls(world)["review"] in page
    # Another teacher of the school is told nothing.
    other = login(world.other_teacher)
    assert "renvoyées par le coordonnateur" not in other.get(dashboard).content.decode()


def test_the_complete_count_follows_each_cell(world, login):
    student = first_student(world)
    TermAssessmentFactory(
        student=student, term=world.term, subject=world.assignment.subject, work=None
    )
    client = login(world.teacher)
    url = reverse(
        "classes:cell_update",
        args=[world.assignment.pk, world.term.pk, student.pk, "work"],
    )
    body = client.post(url, {"value": "7"}, **HX).content.decode()
    assert '<strong id="complete-count" hx-swap-oob="true">1</strong>' in body


def test_a_bad_since_is_a_400_not_a_500(world, login, drafted):
    client = login(world.teacher)
    job = GenerationJob.objects.get()
    url = reverse("generation:job_progress", args=[job.pk])
    for junk in ("2026-02-30T10:00:00", "hier", "9" * 40):
        response = client.get(url, {"since": junk}, **HX)
        assert response.status_code == 400, junk
    assert client.get(url, {"since": "2026-02-03T10:00:00+01:00"}, **HX).status_code == 286


def test_a_bogus_rating_says_so_and_saves_nothing(world, login, drafted):
    student = first_student(world)
    client = login(world.teacher)
    validate(client, world, student, HUMAN)
    feedback = Feedback.objects.get()
    url = reverse("generation:feedback_rate", args=[feedback.pk])
    body = client.post(url, {"rating": "bogus"}, **HX).content.decode()
    assert "Merci, retour enregistré" not in body
    assert "Retour non enregistré" in body
    feedback.refresh_from_db()
    assert feedback.rating == ""
    body = client.post(url, {"rating": "up"}, **HX).content.decode()
    assert "Merci, retour enregistré" in body
