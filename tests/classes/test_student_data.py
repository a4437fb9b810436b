"""A student's data rights: export of everything held, erasure, and the end-of-year purge."""

import io
import json
import zipfile
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from classes.models import SchoolClass, SchoolYear, Student, Teacher, Term, TermAssessment
from generation.models import Appreciation, Draft, Feedback, GenerationJob
from privacy.student_data import (
    PLACEHOLDER,
    PurgeRefused,
    _names_pattern,
    _student_name_variants,
    scrub_names,
    student_data_export,
    student_erase,
    year_purge,
)
from tests.factories import (
    SchoolClassFactory,
    SchoolYearFactory,
    StudentFactory,
    TeachingAssignmentFactory,
    TermAssessmentFactory,
    TermFactory,
)

pytestmark = pytest.mark.django_db

PROMPT = [
    {"role": "system", "content": "Vous êtes une IA assistant les enseignants…"},
    {"role": "user", "content": "Veuillez rédiger une appréciation… 12.5 de moyenne…"},
]


def give_history(*, student, assignment, term, final_text, draft_text="Bon trimestre."):
    """A draft, its validated appréciation and the feedback row, written with the ORM."""
    job, _ = GenerationJob.objects.get_or_create(
        assignment=assignment,
        term=term,
        status=GenerationJob.Status.SUCCEEDED,
        defaults={"requested_by": assignment.teacher},
    )
    draft = Draft.objects.create(
        job=job,
        student=student,
        subject=assignment.subject,
        term=term,
        status=Draft.Status.GENERATED,
        prompt_messages=PROMPT,
        prompt_version="card-test",
        text=draft_text,
        raw_texts=[draft_text],
        flags=[{"code": "length", "message": "Trop long"}],
        attempts=1,
        model_base="base",
        model_adapter="adapter",
        generated_at=timezone.now(),
    )
    appreciation = Appreciation.objects.create(
        student=student,
        subject=assignment.subject,
        term=term,
        status=Appreciation.Status.VALIDATED,
        text=final_text,
        draft=draft,
        validated_by=assignment.teacher,
        validated_at=timezone.now(),
    )
    feedback = Feedback.objects.create(
        appreciation=appreciation,
        draft=draft,
        school_id=assignment.school_class.school_id,
        validated_by=assignment.teacher,
        draft_text=draft_text,
        final_text=final_text,
        edited=draft_text != final_text,
        prompt_messages=PROMPT,
        prompt_version="card-test",
        inputs={"subject": assignment.subject.name, "trimester": term.number, "averages": [12.5]},
    )
    return draft, appreciation, feedback


@pytest.fixture
def zoe(world):
    student = StudentFactory(
        school_class=world.school_class, first_name="Zoé", last_name="Le Gall", external_id="E42"
    )
    TermAssessmentFactory(student=student, term=world.terms[0], subject=world.assignment.subject)
    TermAssessmentFactory(
        student=student, term=world.term, subject=world.assignment.subject, average=None
    )
    return student


# --- Export -----------------------------------------------------------------------------------


def test_export_holds_every_kind_of_data_and_is_json(world, zoe):
    draft, appreciation, feedback = give_history(
        student=zoe,
        assignment=world.assignment,
        term=world.term,
        final_text="Trimestre sérieux.",
    )
    classmate = world.school_class.students.exclude(pk=zoe.pk).first()
    give_history(
        student=classmate, assignment=world.assignment, term=world.term, final_text="Autre."
    )

    data = json.loads(json.dumps(student_data_export(student=zoe)))  # no custom encoder

    assert data["student"] == {
        "id": zoe.pk,
        "last_name": "Le Gall",
        "first_name": "Zoé",
        "is_repeating": False,
        "external_id": "E42",
        "gepi_login": "",
    }
    assert data["school"]["id"] == world.school.pk
    assert data["class"]["name"] == "2nde 3"
    assert data["class"]["school_year"]["name"] == world.terms[0].school_year.name
    assert {
        "subject": world.assignment.subject.name,
        "teacher": {"id": world.teacher.pk, "name": str(world.teacher)},
    } in data["class"]["teachers"]
    assert len(data["assessments"]) == 2
    first = data["assessments"][0]
    assert first["term"]["number"] == 1
    assert first["average"] == 12.5 and first["work"] == 8.0
    assert data["assessments"][1]["average"] is None
    [exported_appreciation] = data["appreciations"]
    assert exported_appreciation["id"] == appreciation.pk
    assert exported_appreciation["status"] == "validated"
    assert exported_appreciation["text"] == "Trimestre sérieux."
    assert exported_appreciation["validated_by"]["name"] == str(world.teacher)
    assert exported_appreciation["validated_at"]
    [exported_draft] = data["drafts"]
    assert exported_draft["id"] == draft.pk
    assert exported_draft["prompt_messages"] == PROMPT
    assert exported_draft["flags"][0]["code"] == "length"
    assert exported_draft["requested_by"]["id"] == world.teacher.pk
    [exported_feedback] = data["feedback"]  # the classmate's is not there
    assert exported_feedback["id"] == feedback.pk
    assert exported_feedback["final_text"] == "Trimestre sérieux."
    assert exported_feedback["inputs"]["averages"] == [12.5]


# --- Name scrubbing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Zoé progresse.", "[élève] progresse."),
        ("ZOE progresse, LE GALL aussi.", "[élève] progresse, [élève] aussi."),
        ("Le travail de Zoé Le Gall est bon.", "Le travail de [élève] est bon."),
        ("Les progrès d'Zoe sont nets.", "Les progrès d'[élève] sont nets."),
        ("Zoéline et zoologie restent.", "Zoéline et zoologie restent."),
        ("Le galet et la gallerie.", "Le galet et la gallerie."),
        ("Gall, gallois ?", "[élève], gallois ?"),
    ],
)
def test_scrub_names_whole_words_accent_and_case_insensitive(text, expected):
    student = Student(first_name="Zoé", last_name="Le Gall")
    pattern = _names_pattern(_student_name_variants([student]))
    assert scrub_names(text, pattern)[0] == expected


def test_scrub_names_keeps_the_rest_of_an_accented_text():
    student = Student(first_name="Anaïs", last_name="Straßer")
    pattern = _names_pattern(_student_name_variants([student]))
    text, count = scrub_names("Très bien, ANAIS ; élève STRASSER appliquée. Élan.", pattern)
    assert text == "Très bien, [élève] ; élève [élève] appliquée. Élan."
    assert count == 2


# --- Erasure ----------------------------------------------------------------------------------


def test_erase_removes_the_student_and_keeps_nameless_unlinked_feedback(world, zoe):
    draft, appreciation, feedback = give_history(
        student=zoe,
        assignment=world.assignment,
        term=world.term,
        draft_text="Zoé a fourni des efforts.",
        final_text="Zoe progresse ; LE GALL doit encore persévérer à l'oral.",
    )
    classmate = world.school_class.students.exclude(pk=zoe.pk).first()
    _, classmate_appreciation, classmate_feedback = give_history(
        student=classmate,
        assignment=world.assignment,
        term=world.term,
        final_text="Travaille avec Zoé : bonne entraide.",
    )
    foreign_student = world.foreign_assignment.school_class.students.first()
    _, _, foreign_feedback = give_history(
        student=foreign_student,
        assignment=world.foreign_assignment,
        term=world.foreign_term,
        final_text="Zoé est un prénom qu'un autre établissement a le droit de garder.",
    )

    report = student_erase(student=zoe, user=world.admin)

    assert not Student.objects.filter(pk=zoe.pk).exists()
    assert not TermAssessment.objects.filter(student_id=zoe.pk).exists()
    assert not Draft.objects.filter(pk=draft.pk).exists()
    assert not Appreciation.objects.filter(pk=appreciation.pk).exists()
    feedback.refresh_from_db()
    assert feedback.appreciation_id is None and feedback.draft_id is None
    assert feedback.school_id == world.school.pk
    assert feedback.final_text == (
        f"{PLACEHOLDER} progresse ; {PLACEHOLDER} doit encore persévérer à l'oral."
    )
    assert feedback.draft_text == f"{PLACEHOLDER} a fourni des efforts."
    # A classmate's row that named her: scrubbed, still linked to the classmate.
    classmate_feedback.refresh_from_db()
    assert classmate_feedback.appreciation_id == classmate_appreciation.pk
    assert classmate_feedback.final_text == f"Travaille avec {PLACEHOLDER} : bonne entraide."
    foreign_feedback.refresh_from_db()
    assert foreign_feedback.final_text.startswith("Zoé est")
    assert Student.objects.filter(pk=classmate.pk).exists()
    assert (report.assessments, report.appreciations, report.drafts) == (2, 1, 1)
    assert (report.feedback_unlinked, report.feedback_scrubbed) == (1, 2)
    event = AuditEvent.objects.get(event=AuditEvent.Event.STUDENT_ERASED)
    assert event.actor == world.admin and event.school_id == world.school.pk
    assert event.detail["student_id"] == zoe.pk
    assert "Zo" not in json.dumps(event.detail) and "Gall" not in json.dumps(event.detail)


# --- Admin actions ----------------------------------------------------------------------------


CHANGELIST = "admin:classes_student_changelist"


def run_action(client, action, students, **extra):
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [s.pk for s in students], "index": 0, **extra},
    )


def test_admin_exports_one_student_as_a_json_download(world, zoe, login):
    give_history(student=zoe, assignment=world.assignment, term=world.term, final_text="Bien.")
    client = login(world.admin)
    response = run_action(client, "export_student_data", [zoe])
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"].startswith("attachment;")
    assert f"donnees-eleve-{zoe.pk}-" in response["Content-Disposition"]
    data = json.loads(response.content)
    assert data["student"]["id"] == zoe.pk
    assert data["appreciations"][0]["text"] == "Bien."
    event = AuditEvent.objects.get(event=AuditEvent.Event.STUDENT_DATA_EXPORT)
    assert event.actor == world.admin and event.detail == {"student_id": zoe.pk}


def test_admin_exports_several_students_as_a_zip(world, zoe, login):
    classmate = world.school_class.students.exclude(pk=zoe.pk).first()
    response = run_action(login(world.admin), "export_student_data", [zoe, classmate])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith("attachment;")
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
        ids = {json.loads(archive.read(name))["student"]["id"] for name in names}
    assert len(names) == 2 and ids == {zoe.pk, classmate.pk}


def test_admin_cannot_export_or_erase_another_schools_student(world, login):
    foreign_student = world.foreign_assignment.school_class.students.first()
    client = login(world.admin)
    response = run_action(client, "export_student_data", [foreign_student])
    assert response.status_code == 302
    assert "application/json" not in response.get("Content-Type", "")
    response = run_action(client, "erase_student_data", [foreign_student], post="yes")
    assert response.status_code == 302
    assert Student.objects.filter(pk=foreign_student.pk).exists()
    assert not AuditEvent.objects.filter(
        event__in=[AuditEvent.Event.STUDENT_DATA_EXPORT, AuditEvent.Event.STUDENT_ERASED]
    ).exists()


def test_a_teacher_has_no_access_to_the_actions(world, zoe, login):
    client = login(world.teacher)
    response = run_action(client, "export_student_data", [zoe])
    assert response.status_code == 302 and "login" in response["Location"]
    response = run_action(client, "erase_student_data", [zoe], post="yes")
    assert Student.objects.filter(pk=zoe.pk).exists()


def test_admin_erasure_asks_for_confirmation_then_says_what_it_removed(world, zoe, login):
    _, _, feedback = give_history(
        student=zoe, assignment=world.assignment, term=world.term, final_text="Zoé progresse."
    )
    client = login(world.admin)

    response = run_action(client, "erase_student_data", [zoe])
    assert response.status_code == 200
    assert "admin/classes/student/erase_confirmation.html" in [t.name for t in response.templates]
    page = response.content.decode()
    assert "définitivement effacées" in page and "Le Gall Zoé" in page
    assert 'name="post" value="yes"' in page
    assert Student.objects.filter(pk=zoe.pk).exists()

    response = client.post(
        reverse(CHANGELIST),
        {"action": "erase_student_data", "_selected_action": [zoe.pk], "post": "yes"},
        follow=True,
    )
    assert response.status_code == 200
    assert not Student.objects.filter(pk=zoe.pk).exists()
    [message] = [str(m) for m in response.context["messages"]]
    assert "Données effacées pour 1 élève(s)" in message
    assert "2 évaluation(s), 1 appréciation(s) et 1 brouillon(s)" in message
    assert "1 retour(s) conservé(s)" in message
    assert "Zoé" not in message
    feedback.refresh_from_db()
    assert feedback.appreciation_id is None
    assert feedback.final_text == f"{PLACEHOLDER} progresse."


def test_admin_delete_of_a_student_is_an_erasure(world, zoe, login):
    _, _, feedback = give_history(
        student=zoe, assignment=world.assignment, term=world.term, final_text="Zoé progresse."
    )
    client = login(world.admin)
    response = client.post(reverse("admin:classes_student_delete", args=[zoe.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Student.objects.filter(pk=zoe.pk).exists()
    feedback.refresh_from_db()
    assert feedback.final_text == f"{PLACEHOLDER} progresse."
    assert AuditEvent.objects.filter(event=AuditEvent.Event.STUDENT_ERASED).count() == 1


# --- purge_year -------------------------------------------------------------------------------


@pytest.fixture
def finished_year(world):
    """A past year of the world's school: two classes with students, grades, drafts, feedback."""
    year = SchoolYearFactory(
        school=world.school,
        name="2024-2025",
        start_date=date(2024, 9, 1),
        end_date=date(2025, 7, 4),
    )
    periods = {
        1: (date(2024, 9, 1), date(2024, 11, 30)),
        2: (date(2024, 12, 1), date(2025, 2, 28)),
        3: (date(2025, 3, 1), date(2025, 7, 4)),
    }
    terms = [
        TermFactory(
            school_year=year,
            number=n,
            start_date=periods[n][0],
            end_date=periods[n][1],
            is_closed=True,
        )
        for n in (1, 2, 3)
    ]
    feedback = []
    for class_name, last_names in (("2nde 1", ["Martin", "Bernard"]), ("1ère 4", ["Dubois"])):
        school_class = SchoolClassFactory(school=world.school, school_year=year, name=class_name)
        assignment = TeachingAssignmentFactory(teacher=world.teacher, school_class=school_class)
        for last_name in last_names:
            student = StudentFactory(
                school_class=school_class, last_name=last_name, first_name="Inès"
            )
            for term in terms:
                TermAssessmentFactory(student=student, term=term, subject=assignment.subject)
            feedback.append(
                give_history(
                    student=student,
                    assignment=assignment,
                    term=terms[2],
                    final_text=f"Année réussie pour {last_name}, bravo.",
                )[2]
            )
    return year, terms, feedback


def counts_of(school):
    return {
        "classes": SchoolClass.objects.filter(school=school).count(),
        "students": Student.objects.filter(school_class__school=school).count(),
        "assessments": TermAssessment.objects.filter(student__school_class__school=school).count(),
        "appreciations": Appreciation.objects.count(),
        "drafts": Draft.objects.count(),
        "jobs": GenerationJob.objects.count(),
        "feedback": Feedback.objects.count(),
    }


def test_purge_dry_run_changes_nothing_and_says_what_it_would_remove(world, finished_year):
    year, _, feedback = finished_year
    before = counts_of(world.school)
    out = io.StringIO()
    call_command(
        "purge_year", "--school", world.school.pk, "--year", "2024-2025", "--dry-run", stdout=out
    )
    output = out.getvalue()
    assert "Dry run, nothing changed. Would remove from" in output
    assert "  classes: 2\n" in output
    assert "  students: 3\n" in output
    assert "  term assessments (grades): 9\n" in output
    assert "  appreciations: 3\n" in output
    assert "  drafts: 3\n" in output
    assert "  generation jobs: 2\n" in output
    assert "  feedback rows, unlinked from their student: 3\n" in output
    assert "  of which with a student's name replaced by [élève]: 3\n" in output
    assert counts_of(world.school) == before
    feedback[0].refresh_from_db()
    assert feedback[0].appreciation_id is not None
    assert feedback[0].final_text == "Année réussie pour Martin, bravo."
    assert not AuditEvent.objects.filter(event=AuditEvent.Event.YEAR_PURGED).exists()


def test_purge_removes_students_and_grades_and_keeps_the_feedback(world, finished_year):
    year, terms, feedback = finished_year
    current_students = Student.objects.filter(school_class__school_year=world.terms[0].school_year)
    current_before = current_students.count()
    out = io.StringIO()
    call_command("purge_year", "--school", world.school.pk, "--year", "2024-2025", stdout=out)

    output = out.getvalue()
    assert f"Removed from school {world.school.pk}" in output
    assert "  students: 3\n" in output and "  term assessments (grades): 9\n" in output
    assert "Kept:\n  feedback rows, unlinked from their student: 3\n" in output
    assert not SchoolClass.objects.filter(school_year=year).exists()
    assert not Student.objects.filter(school_class__school_year=year).exists()
    assert not TermAssessment.objects.filter(term__in=terms).exists()
    assert not Appreciation.objects.filter(term__in=terms).exists()
    assert not Draft.objects.filter(term__in=terms).exists()
    assert not GenerationJob.objects.filter(term__in=terms).exists()
    assert SchoolYear.objects.filter(pk=year.pk).exists()
    assert Term.objects.filter(school_year=year).count() == 3
    for item in feedback:
        item.refresh_from_db()
        assert item.appreciation_id is None and item.draft_id is None
        assert item.school_id == world.school.pk
        assert item.final_text == f"Année réussie pour {PLACEHOLDER}, bravo."
    # The current year is untouched.
    assert current_students.count() == current_before
    event = AuditEvent.objects.get(event=AuditEvent.Event.YEAR_PURGED)
    assert event.school_id == world.school.pk
    assert event.detail["students"] == 3 and event.detail["forced"] is False

    # A second run finds nothing left.
    out = io.StringIO()
    call_command("purge_year", "--school", world.school.pk, "--year", "2024-2025", stdout=out)
    assert "  students: 0\n" in out.getvalue()


def test_purge_refuses_an_unfinished_year_without_force(world):
    year = world.terms[0].school_year
    year.end_date = date(2099, 7, 4)
    year.save()
    Term.objects.filter(school_year=year).update(is_closed=True)
    before = counts_of(world.school)
    with pytest.raises(CommandError) as refused:
        call_command("purge_year", "--school", world.school.pk, "--year", year.name)
    message = str(refused.value)
    assert "n'est pas terminée" in message and "is not finished" in message
    assert "--force" in message
    assert counts_of(world.school) == before

    out = io.StringIO()
    call_command(
        "purge_year", "--school", world.school.pk, "--year", year.name, "--force", stdout=out
    )
    assert not Student.objects.filter(school_class__school_year=year).exists()
    assert AuditEvent.objects.get(event=AuditEvent.Event.YEAR_PURGED).detail["forced"] is True


def test_purge_refuses_a_year_with_open_terms_without_force(world, finished_year):
    year, terms, _ = finished_year
    Term.objects.filter(pk=terms[2].pk).update(is_closed=False)
    with pytest.raises(CommandError) as refused:
        call_command("purge_year", "--school", world.school.pk, "--year", "2024-2025")
    message = str(refused.value)
    assert "Trimestre(s) non clos : 3" in message and "Term(s) not closed: 3" in message
    assert SchoolClass.objects.filter(school_year=year).count() == 2
    with pytest.raises(PurgeRefused):
        year_purge(school_year=year)
    # A dry run is refused too: it says what a real run would do.
    with pytest.raises(PurgeRefused):
        year_purge(school_year=year, dry_run=True)
    report = year_purge(school_year=year, force=True)
    assert report.students == 3


def test_purge_names_an_unknown_school_or_year(world):
    with pytest.raises(CommandError, match="No school with id 999999"):
        call_command("purge_year", "--school", 999999, "--year", "2024-2025")
    with pytest.raises(CommandError, match="has no year '1999-2000'"):
        call_command("purge_year", "--school", world.school.pk, "--year", "1999-2000")


def test_purge_leaves_other_schools_alone(world, finished_year):
    foreign_school = world.foreign_assignment.school_class.school
    foreign_before = counts_of(foreign_school)["students"]
    call_command(
        "purge_year", "--school", world.school.pk, "--year", "2024-2025", stdout=io.StringIO()
    )
    assert counts_of(foreign_school)["students"] == foreign_before
    assert Teacher.objects.filter(pk=world.teacher.pk).exists()
    foreign_assessment = TermAssessment.objects.filter(
        student__school_class__school=foreign_school
    ).first()
    assert foreign_assessment.average == Decimal("12.5")
