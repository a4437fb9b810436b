"""Class-list import through the pages: upload, preview, confirm; permissions; bad files."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from openpyxl import Workbook

from classes.import_services import import_apply, import_preview
from classes.imports import parse_class_file
from classes.models import (
    Level,
    School,
    SchoolClass,
    SchoolYear,
    Student,
    Subject,
    Teacher,
    TeachingAssignment,
    Term,
    TermAssessment,
)
from classes.services import ClosedTermError

PASSWORD = "import-tests-password"


# --- Helpers (local on purpose: independent of the shared fixtures) ---------------------------


@dataclass
class Setup:
    school: School
    terms: list[Term]
    school_class: SchoolClass
    teacher: Teacher
    assignment: TeachingAssignment

    @property
    def term(self) -> Term:
        return self.terms[1]

    def upload_url(self, term: Term | None = None) -> str:
        term = term or self.term
        return reverse("classes:import_upload", args=[self.assignment.pk, term.pk])

    def confirm_url(self, term: Term | None = None) -> str:
        term = term or self.term
        return reverse("classes:import_confirm", args=[self.assignment.pk, term.pk])

    def class_url(self) -> str:
        return reverse("classes:class_page", args=[self.assignment.pk, self.term.pk])


_counter = iter(range(1, 10_000))


def make_teacher(school: School, *, role: str = Teacher.Role.TEACHER) -> Teacher:
    n = next(_counter)
    return Teacher.objects.create_user(
        username=f"prof{n}",
        password=PASSWORD,
        first_name="Prof",
        last_name=f"N{n}",
        school=school,
        role=role,
    )


def make_setup() -> Setup:
    n = next(_counter)
    school = School.objects.create(name=f"Lycée {n}")
    year = SchoolYear.objects.create(
        school=school, name="2026-2027", start_date=date(2026, 9, 1), end_date=date(2027, 7, 4)
    )
    term_dates = [
        (date(2026, 9, 1), date(2026, 11, 30)),
        (date(2026, 12, 1), date(2027, 3, 15)),
        (date(2027, 3, 16), date(2027, 7, 4)),
    ]
    terms = [
        Term.objects.create(
            school_year=year, number=number, start_date=start, end_date=end, is_closed=number == 1
        )
        for number, (start, end) in enumerate(term_dates, start=1)
    ]
    school_class = SchoolClass.objects.create(
        school=school, school_year=year, level=Level.objects.get(code="2nde"), name="2nde 3"
    )
    teacher = make_teacher(school)
    assignment = TeachingAssignment.objects.create(
        teacher=teacher,
        school_class=school_class,
        subject=Subject.objects.get(school=None, short_name="HG"),
    )
    return Setup(school, terms, school_class, teacher, assignment)


@pytest.fixture
def setup(db) -> Setup:
    return make_setup()


@pytest.fixture
def teacher_client(client, setup):
    assert client.login(username=setup.teacher.username, password=PASSWORD)
    return client


def add_student(setup: Setup, last_name: str, first_name: str, **fields) -> Student:
    return Student.objects.create(
        school_class=setup.school_class, last_name=last_name, first_name=first_name, **fields
    )


def csv_file(text: str, *, encoding: str = "utf-8", name: str = "liste.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(encoding), content_type="text/csv")


def xlsx_file(rows: list[list[object]]) -> SimpleUploadedFile:
    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return SimpleUploadedFile("liste.xlsx", buffer.getvalue())


def payload_of(response) -> str:
    match = re.search(r'name="payload" value="([^"]+)"', response.content.decode())
    assert match, "no confirm form in the page"
    return match.group(1)


def snapshot() -> tuple:
    students = tuple(
        Student.objects.order_by("pk").values_list(
            "pk", "last_name", "first_name", "is_repeating", "external_id"
        )
    )
    assessments = tuple(
        TermAssessment.objects.order_by("pk").values_list(
            "pk", "student_id", "term_id", "average", "behaviour", "participation", "work"
        )
    )
    return students, assessments


FILE = (
    "Nom;Prénom;Redoublant;Identifiant;Moyenne /20;Comportement;Participation;Travail;Option\n"
    "Lefèvre;Chloé;non;clefevre;14,5;8;7;8;Latin\n"
    "DUPONT;Jean Pierre;oui;;9,25;6;5;6,5;\n"
    "Martin;Léa;;;abs;;;;\n"
)


# --- Upload, preview, confirm ----------------------------------------------------------------


def test_get_shows_the_form_and_the_expected_columns(teacher_client, setup):
    response = teacher_client.get(setup.upload_url())

    assert response.status_code == 200
    html = response.content.decode()
    assert 'type="file"' in html
    assert 'enctype="multipart/form-data"' in html
    assert "identifiant" in html and "moyenne" in html
    assert setup.class_url() in html


def test_example_file_download_is_itself_importable(teacher_client, setup):
    response = teacher_client.get(setup.upload_url() + "?modele=csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    parsed = parse_class_file(filename="modele.csv", content=response.content)
    assert parsed.is_valid
    assert len(parsed.rows) == 3


def test_upload_preview_then_confirm_creates_and_updates(teacher_client, setup):
    dupont = add_student(setup, "Dupont", "Jean-Pierre")
    TermAssessment.objects.create(
        student=dupont,
        subject=setup.assignment.subject,
        term=setup.term,
        average=Decimal("12"),
        work=Decimal("4"),
    )
    absent = add_student(setup, "Absent", "Paul", is_repeating=True)
    before = snapshot()

    preview = teacher_client.post(setup.upload_url(), {"file": csv_file(FILE, encoding="cp1252")})

    assert preview.status_code == 200
    html = preview.content.decode()
    assert "Prévisualisation" in html
    assert "Élèves à créer" in html and "Lefèvre Chloé" in html
    assert "Élèves modifiés" in html
    assert "12 → <strong>9,25</strong>" in html
    assert "Absents du fichier — non modifiés" in html and "Absent Paul" in html
    assert "« Option »" in html
    assert snapshot() == before  # the preview writes nothing

    response = teacher_client.post(setup.confirm_url(), {"payload": payload_of(preview)})

    assert response.status_code == 302
    assert response["Location"] == setup.class_url()
    page = teacher_client.get(response["Location"])
    assert "Import terminé : 2 élèves créés, 1 mis à jour." in page.content.decode()

    chloe = Student.objects.get(school_class=setup.school_class, last_name="Lefèvre")
    assert (chloe.first_name, chloe.is_repeating, chloe.external_id) == ("Chloé", False, "clefevre")
    chloe_assessment = TermAssessment.objects.get(student=chloe, term=setup.term)
    assert chloe_assessment.subject == setup.assignment.subject
    assert (chloe_assessment.average, chloe_assessment.behaviour) == (Decimal("14.5"), 8)
    assert chloe_assessment.updated_by == setup.teacher

    dupont.refresh_from_db()
    assert dupont.last_name == "Dupont"  # the stored spelling is kept
    assert dupont.is_repeating is True
    assessment = TermAssessment.objects.get(student=dupont, term=setup.term)
    assert (assessment.average, assessment.work) == (Decimal("9.25"), Decimal("6.5"))
    assert assessment.updated_by == setup.teacher

    lea = Student.objects.get(school_class=setup.school_class, last_name="Martin")
    assert not TermAssessment.objects.filter(student=lea).exists()  # "abs" = no grade

    absent.refresh_from_db()
    assert absent.is_repeating is True  # not in the file: untouched, not deleted
    assert Student.objects.filter(school_class=setup.school_class).count() == 4


def test_reimporting_the_same_file_changes_nothing(teacher_client, setup):
    first = teacher_client.post(setup.upload_url(), {"file": csv_file(FILE)})
    teacher_client.post(setup.confirm_url(), {"payload": payload_of(first)})
    before = snapshot()

    again = teacher_client.post(setup.upload_url(), {"file": csv_file(FILE)})

    html = again.content.decode()
    assert "Aucun changement" in html
    assert "Confirmer l'import" not in html
    assert "3 élèves sans changement" in html

    # Even a confirm posted anyway (old payload of the same file) changes nothing.
    response = teacher_client.post(setup.confirm_url(), {"payload": payload_of(first)})
    assert response.status_code == 302
    assert snapshot() == before


def test_same_list_with_other_spellings_matches_existing_students(teacher_client, setup):
    add_student(setup, "Lefèvre", "Chloé")
    add_student(setup, "Le Gall", "Jean-Pierre")
    text = "nom;prenom;moyenne\nLEFEVRE;chloe;12\nle-gall;Jean Pierre;13\n"

    preview = teacher_client.post(setup.upload_url(), {"file": csv_file(text)})
    teacher_client.post(setup.confirm_url(), {"payload": payload_of(preview)})

    assert Student.objects.filter(school_class=setup.school_class).count() == 2
    assert TermAssessment.objects.filter(term=setup.term).count() == 2


def test_xlsx_upload(teacher_client, setup):
    upload = xlsx_file([["Nom", "Prénom", "Moyenne"], ["Lefèvre", "Chloé", 15.5]])

    preview = teacher_client.post(setup.upload_url(), {"file": upload})
    teacher_client.post(setup.confirm_url(), {"payload": payload_of(preview)})

    assessment = TermAssessment.objects.get(student__last_name="Lefèvre")
    assert assessment.average == Decimal("15.5")


def test_absent_column_and_empty_cells_leave_values_alone(teacher_client, setup):
    student = add_student(setup, "Martin", "Léa", is_repeating=True, external_id="lm")
    TermAssessment.objects.create(
        student=student,
        subject=setup.assignment.subject,
        term=setup.term,
        average=Decimal("11"),
        behaviour=Decimal("5"),
        participation=Decimal("6"),
    )
    text = "nom;prénom;redoublant;identifiant;moyenne;comportement\nMartin;Léa;;;;7\n"

    preview = teacher_client.post(setup.upload_url(), {"file": csv_file(text)})
    teacher_client.post(setup.confirm_url(), {"payload": payload_of(preview)})

    student.refresh_from_db()
    assert (student.is_repeating, student.external_id) == (True, "lm")
    assessment = TermAssessment.objects.get(student=student)
    assert assessment.average == Decimal("11")  # empty cell
    assert assessment.behaviour == Decimal("7")  # changed
    assert assessment.participation == Decimal("6")  # column absent
    assert assessment.work is None


def test_homonyms_in_the_class_need_identifiants(teacher_client, setup):
    add_student(setup, "Martin", "Léa", external_id="lm1")
    add_student(setup, "Martin", "Léa", external_id="lm2")

    ambiguous = teacher_client.post(
        setup.upload_url(), {"file": csv_file("nom;prénom;moyenne\nMartin;Léa;12\n")}
    )
    assert "plusieurs élèves de la classe s&#x27;appellent" in ambiguous.content.decode()
    assert "Confirmer l'import" not in ambiguous.content.decode()

    text = "nom;prénom;identifiant;moyenne\nMartin;Léa;lm2;12\nMartin;Léa;lm1;14\n"
    preview = teacher_client.post(setup.upload_url(), {"file": csv_file(text)})
    teacher_client.post(setup.confirm_url(), {"payload": payload_of(preview)})

    averages = dict(
        TermAssessment.objects.values_list("student__external_id", "average").order_by()
    )
    assert averages == {"lm1": Decimal("14"), "lm2": Decimal("12")}


# --- Bad files -------------------------------------------------------------------------------


def test_bad_file_lists_the_bad_lines_and_imports_nothing(teacher_client, setup):
    add_student(setup, "Martin", "Léa")
    before = snapshot()
    text = "nom;prénom;moyenne\nPetit;Hugo;12\nDurand;Lina;21\n;Zoé;10\nPetit;Hugo;13\n"

    response = teacher_client.post(setup.upload_url(), {"file": csv_file(text)})

    assert response.status_code == 200
    html = response.content.decode()
    assert "Le fichier n'a pas été importé" in html
    assert "Ligne 3 : moyenne « 21 » — La valeur doit être comprise entre 0 et 20" in html
    assert "Ligne 4 : le nom est vide." in html
    assert "Ligne 5 : élève « Petit Hugo » en double (déjà ligne 2)." in html
    assert 'name="payload"' not in html
    assert snapshot() == before


@pytest.mark.parametrize(
    ("upload", "fragment"),
    [
        (SimpleUploadedFile("liste.pdf", b"%PDF-1.4"), "Type de fichier non accepté"),
        (SimpleUploadedFile("liste.csv", bytes(range(256)) * 4), "n&#x27;est pas un fichier"),
        (SimpleUploadedFile("liste.csv", "Élève;Note\nA;1\n".encode()), "obligatoire"),
        (SimpleUploadedFile("liste.xlsx", b"PK\x03\x04garbage"), "lisible"),
    ],
)
def test_unusable_files_get_a_french_message(teacher_client, setup, upload, fragment):
    before = snapshot()

    response = teacher_client.post(setup.upload_url(), {"file": upload})

    assert response.status_code == 200
    assert fragment in response.content.decode()
    assert snapshot() == before


def test_no_file(teacher_client, setup):
    response = teacher_client.post(setup.upload_url(), {})

    assert response.status_code == 200
    assert "Ce champ est obligatoire" in response.content.decode()


def test_too_big_file(teacher_client, setup, settings):
    settings.IMPORT_MAX_BYTES = 100

    response = teacher_client.post(setup.upload_url(), {"file": csv_file("nom;prénom\n" * 50)})

    assert "trop volumineux" in response.content.decode()


# --- The signed payload ----------------------------------------------------------------------


def test_tampered_payload_is_refused(teacher_client, setup):
    preview = teacher_client.post(setup.upload_url(), {"file": csv_file(FILE)})
    payload = payload_of(preview)
    before = snapshot()

    for bad in [payload[:-2] + ("AA" if not payload.endswith("AA") else "BB"), "", "x:y:z"]:
        response = teacher_client.post(setup.confirm_url(), {"payload": bad})
        assert response.status_code == 400
        assert "ont été modifiées" in response.content.decode()
    assert snapshot() == before


def test_payload_forged_without_the_key_is_refused(teacher_client, setup):
    data = parse_class_file(filename="a.csv", content=b"nom;prenom;moyenne\nX;Y;12\n").to_data()
    forged = signing.dumps(data, key="not-the-secret", salt="classes.import")

    response = teacher_client.post(setup.confirm_url(), {"payload": forged})

    assert response.status_code == 400
    assert not Student.objects.exists()


def test_payload_is_bound_to_its_term(teacher_client, setup):
    preview = teacher_client.post(setup.upload_url(), {"file": csv_file(FILE)})

    response = teacher_client.post(
        setup.confirm_url(setup.terms[2]), {"payload": payload_of(preview)}
    )

    assert response.status_code == 400
    assert not Student.objects.exists()


def test_expired_payload_is_refused(teacher_client, setup, monkeypatch):
    preview = teacher_client.post(setup.upload_url(), {"file": csv_file(FILE)})
    monkeypatch.setattr("classes.views_import.PAYLOAD_MAX_AGE", -1)

    response = teacher_client.post(setup.confirm_url(), {"payload": payload_of(preview)})

    assert response.status_code == 400
    assert "expiré" in response.content.decode()
    assert not Student.objects.exists()


def test_confirm_revalidates_the_values(teacher_client, setup):
    data = parse_class_file(filename="a.csv", content=b"nom;prenom;moyenne\nX;Y;12\n").to_data()
    data["rows"][0][1][2] = "25"
    salt = f"classes.import:{setup.teacher.pk}:{setup.assignment.pk}:{setup.term.pk}"
    payload = signing.dumps(data, salt=salt, compress=True)

    response = teacher_client.post(setup.confirm_url(), {"payload": payload})

    assert response.status_code == 400
    assert "La valeur doit être comprise entre 0 et 20" in response.content.decode()
    assert not Student.objects.exists()


# --- Closed term, permissions ----------------------------------------------------------------


def test_closed_term_refuses_the_import(teacher_client, setup):
    closed = setup.terms[0]
    before = snapshot()

    page = teacher_client.get(setup.upload_url(closed), follow=True)
    upload = teacher_client.post(setup.upload_url(closed), {"file": csv_file(FILE)}, follow=True)

    for response in (page, upload):
        assert response.redirect_chain[-1][0] == reverse(
            "classes:class_page", args=[setup.assignment.pk, closed.pk]
        )
        assert "ce trimestre est clos" in response.content.decode()
    assert snapshot() == before


def test_term_closed_between_preview_and_confirm(teacher_client, setup):
    preview = teacher_client.post(setup.upload_url(), {"file": csv_file(FILE)})
    Term.objects.filter(pk=setup.term.pk).update(is_closed=True)

    response = teacher_client.post(
        setup.confirm_url(), {"payload": payload_of(preview)}, follow=True
    )

    assert "ce trimestre est clos" in response.content.decode()
    assert not Student.objects.exists()


def test_anonymous_is_sent_to_login(client, setup):
    for response in (
        client.get(setup.upload_url()),
        client.post(setup.upload_url(), {"file": csv_file(FILE)}),
        client.post(setup.confirm_url(), {"payload": "x"}),
    ):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_confirm_needs_post(teacher_client, setup):
    assert teacher_client.get(setup.confirm_url()).status_code == 405


@pytest.mark.parametrize("who", ["colleague", "head", "admin", "foreign"])
def test_others_get_404(client, setup, who):
    if who == "foreign":
        other = make_setup().teacher
    else:
        role = {
            "colleague": Teacher.Role.TEACHER,
            "head": Teacher.Role.DEPARTMENT_HEAD,
            "admin": Teacher.Role.SCHOOL_ADMIN,
        }[who]
        other = make_teacher(setup.school, role=role)
        if who == "head":
            other.headed_subjects.add(setup.assignment.subject)
    assert client.login(username=other.username, password=PASSWORD)

    assert client.get(setup.upload_url()).status_code == 404
    assert client.get(setup.upload_url() + "?modele=csv").status_code == 404
    assert client.post(setup.upload_url(), {"file": csv_file(FILE)}).status_code == 404
    assert client.post(setup.confirm_url(), {"payload": "x"}).status_code == 404
    assert not Student.objects.exists()


def test_head_cannot_replay_the_teachers_payload(client, setup):
    """Even with a valid payload, a department head (read-only) gets the 404."""
    assert client.login(username=setup.teacher.username, password=PASSWORD)
    preview = client.post(setup.upload_url(), {"file": csv_file(FILE)})
    head = make_teacher(setup.school, role=Teacher.Role.DEPARTMENT_HEAD)
    head.headed_subjects.add(setup.assignment.subject)
    assert client.login(username=head.username, password=PASSWORD)

    response = client.post(setup.confirm_url(), {"payload": payload_of(preview)})

    assert response.status_code == 404
    assert not Student.objects.exists()


def test_term_of_another_year_is_404(teacher_client, setup):
    foreign_term = make_setup().term

    assert teacher_client.get(setup.upload_url(foreign_term)).status_code == 404


# --- Services directly -----------------------------------------------------------------------


@pytest.mark.django_db
def test_apply_is_all_or_nothing(setup, monkeypatch):
    parsed = parse_class_file(filename="a.csv", content=FILE.encode())
    before = snapshot()

    def boom(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(TermAssessment.objects, "bulk_create", boom)
    with pytest.raises(RuntimeError):
        import_apply(
            assignment=setup.assignment,
            term=setup.term,
            plan_data=parsed.to_data(),
            user=setup.teacher,
        )

    assert snapshot() == before


@pytest.mark.django_db
def test_apply_on_a_closed_term_raises(setup):
    parsed = parse_class_file(filename="a.csv", content=FILE.encode())

    with pytest.raises(ClosedTermError):
        import_apply(
            assignment=setup.assignment,
            term=setup.terms[0],
            plan_data=parsed.to_data(),
            user=setup.teacher,
        )


@pytest.mark.django_db
def test_preview_then_apply_then_preview(setup):
    parsed = parse_class_file(filename="a.csv", content=FILE.encode())

    plan = import_preview(assignment=setup.assignment, term=setup.term, parsed=parsed)
    assert (len(plan.to_create), len(plan.to_update), len(plan.unchanged)) == (3, 0, 0)
    result = import_apply(
        assignment=setup.assignment, term=setup.term, plan_data=parsed.to_data(), user=setup.teacher
    )
    assert (result.created, result.updated) == (3, 0)
    assert result.message == "Import terminé : 3 élèves créés, 0 mis à jour."

    plan = import_preview(assignment=setup.assignment, term=setup.term, parsed=parsed)
    assert not plan.has_changes
    assert len(plan.unchanged) == 3


def test_identifiant_wins_over_the_name(teacher_client, setup):
    student = add_student(setup, "Martin", "Léa", external_id="lm")
    text = "nom;prénom;identifiant;moyenne\nMartin-Dupont;Léa;lm;15\n"

    preview = teacher_client.post(setup.upload_url(), {"file": csv_file(text)})

    assert "« Martin-Dupont Léa » dans le fichier" in preview.content.decode()
    teacher_client.post(setup.confirm_url(), {"payload": payload_of(preview)})
    assert Student.objects.count() == 1
    assert TermAssessment.objects.get(student=student).average == Decimal("15")


def test_preview_partial_renders_on_its_own(setup):
    from django.template.loader import render_to_string

    parsed = parse_class_file(filename="a.csv", content=FILE.encode())
    plan = import_preview(assignment=setup.assignment, term=setup.term, parsed=parsed)

    html = render_to_string(
        "classes/import.html#preview",
        {"assignment": setup.assignment, "term": setup.term, "plan": plan, "payload": "p"},
    )

    assert html.strip().startswith('<section id="import-preview"')
    assert "<!DOCTYPE" not in html
    assert '<th scope="row">Lefèvre Chloé</th>' in html
    assert 'name="payload" value="p"' in html


def test_the_gepi_login_column_is_imported(teacher_client, setup):
    """Gepi's file of marks and appréciations needs each student's Gepi login."""
    student = add_student(setup, "Martin", "Léa")
    text = "nom;prénom;login\nMartin;Léa;martin.l\nDurand;Noé;durand.n\n"

    preview = teacher_client.post(setup.upload_url(), {"file": csv_file(text)})
    assert "login Gepi" in preview.content.decode()
    teacher_client.post(setup.confirm_url(), {"payload": payload_of(preview)})

    student.refresh_from_db()
    assert (student.gepi_login, student.external_id) == ("martin.l", "")
    created = Student.objects.get(school_class=setup.school_class, last_name="Durand")
    assert created.gepi_login == "durand.n"
