"""Export pages and downloads: who may export what, the files through HTTP, the export screen
(missing students, over-limit flags, Gepi identifiers) and the copy view for Pronote."""

from __future__ import annotations

import csv
import html
import io
import logging
import re

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from classes.models import Teacher, TermAssessment
from generation.models import Appreciation
from tests.factories import (
    AppreciationFactory,
    StudentFactory,
    TeacherFactory,
    TeachingAssignmentFactory,
    shared_subject,
)

HOSTILE_NAME = '=HYPERLINK("http://evil.example","x")'
HOSTILE_TEXT = "@SUM(1+1) ; et encore"


def students(world):
    return list(world.school_class.students.order_by("last_name", "first_name"))


def assignment_url(world, name="assignment", *extra, term=None):
    term = term or world.term
    return reverse(f"exports:{name}", args=[world.assignment.pk, term.pk, *extra])


def class_url(world, name="class", *extra, term=None):
    term = term or world.term
    return reverse(f"exports:{name}", args=[world.school_class.pk, term.pk, *extra])


def read_csv_response(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig")), delimiter=";"))


# --- Permissions ---------------------------------------------------------------------------------

ASSIGNMENT_VIEWS = [
    ("assignment", ()),
    ("assignment_copy", ()),
    ("assignment_file", ("csv",)),
    ("assignment_file", ("gepi",)),
    ("assignment_file", ("xlsx",)),
    ("assignment_file", ("pdf",)),
]
CLASS_VIEWS = [
    ("class", ()),
    ("class_copy", ()),
    ("class_file", ("csv",)),
    ("class_file", ("xlsx",)),
    ("class_file", ("pdf",)),
]


@pytest.mark.parametrize(("name", "extra"), ASSIGNMENT_VIEWS)
@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("teacher", 200),
        ("head", 200),
        ("other_teacher", 404),
        ("admin", 404),
        ("foreign_teacher", 404),
    ],
)
def test_assignment_exports_are_for_its_teacher_and_the_subject_heads(
    world, login, name, extra, who, status
):
    AppreciationFactory(
        student=students(world)[0], subject=world.assignment.subject, term=world.term
    )
    response = login(getattr(world, who)).get(assignment_url(world, name, *extra))
    assert response.status_code == status


def test_a_head_of_another_subject_gets_404(world, login):
    head = TeacherFactory(school=world.school, role=Teacher.Role.DEPARTMENT_HEAD)
    head.headed_subjects.add(shared_subject("HGGSP"))
    assert login(head).get(assignment_url(world)).status_code == 404


@pytest.mark.parametrize(("name", "extra"), CLASS_VIEWS)
@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("teacher", 200),
        ("admin", 200),
        ("other_teacher", 404),
        ("head", 404),
        ("foreign_teacher", 404),
    ],
)
def test_class_exports_are_for_its_teachers_and_the_school_admin(
    world, login, name, extra, who, status
):
    response = login(getattr(world, who)).get(class_url(world, name, *extra))
    assert response.status_code == status


def test_another_schools_admin_gets_404(world, login):
    foreign_admin = TeacherFactory(
        school=world.foreign_assignment.school_class.school, role=Teacher.Role.SCHOOL_ADMIN
    )
    assert login(foreign_admin).get(class_url(world)).status_code == 404
    assert login(foreign_admin).get(class_url(world, "class_file", "csv")).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        lambda w: reverse("exports:index"),
        lambda w: assignment_url(w),
        lambda w: assignment_url(w, "assignment_file", "csv"),
        lambda w: assignment_url(w, "assignment_copy"),
        lambda w: class_url(w),
        lambda w: class_url(w, "class_file", "pdf"),
        lambda w: reverse("exports:dataset_file", args=["chat-jsonl"]),
    ],
)
def test_anonymous_users_are_sent_to_the_login_page(world, client, url):
    response = client.get(url(world))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_a_term_of_another_school_is_404(world, login):
    client = login(world.teacher)
    assert client.get(assignment_url(world, term=world.foreign_term)).status_code == 404
    assert client.get(class_url(world, term=world.foreign_term)).status_code == 404


def test_unknown_formats_are_404_and_gepi_is_per_subject_only(world, login):
    client = login(world.teacher)
    assert client.get(assignment_url(world, "assignment_file", "docx")).status_code == 404
    assert client.get(class_url(world, "class_file", "gepi")).status_code == 404


def test_downloads_answer_get_only(world, login):
    client = login(world.teacher)
    assert client.post(assignment_url(world, "assignment_file", "csv")).status_code == 405


def test_a_user_without_school_gets_404_on_the_index(world, login):
    loner = TeacherFactory(school=None)
    assert login(loner).get(reverse("exports:index")).status_code == 404


# --- Files through HTTP --------------------------------------------------------------------------


def test_csv_download_has_only_final_appreciations_and_neutralised_cells(world, login, caplog):
    s = students(world)
    subject, term = world.assignment.subject, world.term
    hostile = StudentFactory(school_class=world.school_class, last_name=HOSTILE_NAME)
    AppreciationFactory(student=hostile, subject=subject, term=term, text=HOSTILE_TEXT)
    AppreciationFactory(student=s[0], subject=subject, term=term, text="Bon trimestre.")
    AppreciationFactory(
        student=s[1],
        subject=subject,
        term=term,
        status=Appreciation.Status.GENERATED,
        text="Brouillon.",
    )

    with caplog.at_level(logging.INFO, logger="exports.views"):
        response = login(world.teacher).get(assignment_url(world, "assignment_file", "csv"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="appreciations-')
    assert "no-store" in response["Cache-Control"]
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = read_csv_response(response)
    by_name = {row[0]: row for row in rows[1:]}
    assert set(by_name) == {s[0].last_name, "'" + HOSTILE_NAME}
    assert by_name["'" + HOSTILE_NAME][7] == "'" + HOSTILE_TEXT
    assert by_name[s[0].last_name][7] == "Bon trimestre."
    assert "Brouillon." not in response.content.decode("utf-8-sig")
    from audit.models import AuditEvent

    event = AuditEvent.objects.get(event=AuditEvent.Event.EXPORT)
    assert event.actor == world.teacher
    assert event.detail["assignment_id"] == world.assignment.pk
    assert event.detail["term_id"] == world.term.pk
    assert event.detail["fmt"] == "csv"


def test_gepi_download_encodes_semicolons_and_leaves_out_no_identifier(world, login):
    s = students(world)
    subject, term = world.assignment.subject, world.term
    s[0].gepi_login = "nom00.camille"
    s[0].save()
    s[1].external_id = "123456789AB"  # an INE: Gepi would refuse the whole file
    s[1].save()
    hostile = StudentFactory(school_class=world.school_class, last_name="Zz", gepi_login="-1+1")
    AppreciationFactory(
        student=s[0], subject=subject, term=term, text="Travail sérieux ; à poursuivre."
    )
    AppreciationFactory(student=s[1], subject=subject, term=term, text="Sans identifiant.")
    AppreciationFactory(student=hostile, subject=subject, term=term, text="=1+1")

    response = login(world.teacher).get(assignment_url(world, "assignment_file", "gepi"))

    assert response.status_code == 200
    assert not response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8")), delimiter=";"))
    # Gepi is a database import: texts and logins as they are, no spreadsheet guard, and
    # an empty NOTE where there is no average (Gepi keeps its mark).
    assert rows == [
        ["IDENTIFIANT", "NOTE", "Appréciation"],
        ["nom00.camille", "", "Travail sérieux |POINT-VIRGULE| à poursuivre."],
        ["-1+1", "", "=1+1"],
    ]
    # The export screen says which identifier Gepi needs and names the student without it.
    page = login(world.teacher).get(assignment_url(world)).content.decode()
    assert "login Gepi" in page
    section = page[page.index('id="no-identifier"') :]
    section = section[: section.index("</div>")]
    assert f"{s[1].last_name} {s[1].first_name}" in section
    assert "pas de login Gepi" in section
    assert "INE" in section


def test_xlsx_download_reads_back(world, login):
    s = students(world)
    hostile = StudentFactory(school_class=world.school_class, last_name=HOSTILE_NAME)
    AppreciationFactory(
        student=hostile, subject=world.assignment.subject, term=world.term, text=HOSTILE_TEXT
    )
    AppreciationFactory(
        student=s[0], subject=world.assignment.subject, term=world.term, text="Bon trimestre."
    )

    response = login(world.head).get(assignment_url(world, "assignment_file", "xlsx"))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    workbook = load_workbook(io.BytesIO(response.content))
    rows = list(workbook["Appréciations"].iter_rows(values_only=True))
    # Class order: "=" sorts before letters.
    assert [(r[0], r[7]) for r in rows[1:]] == [
        (HOSTILE_NAME, HOSTILE_TEXT),
        (s[0].last_name, "Bon trimestre."),
    ]
    # As validated, no visible guard: string cells, which no spreadsheet runs as a formula.
    sheet = workbook["Appréciations"]
    types = {cell.data_type for row in sheet.iter_rows(min_row=2) for cell in row[:6]}
    assert types <= {"s", "inlineStr"}  # an empty text is read back as an inline string
    assert sheet.cell(row=2, column=8).data_type == "s"
    missing = list(workbook["À compléter"].iter_rows(values_only=True))
    assert [r[0] for r in missing[1:]] == [s[1].last_name, s[2].last_name]


def test_pdf_download_of_the_whole_class(world, login):
    from pypdf import PdfReader

    s = students(world)
    AppreciationFactory(
        student=s[0], subject=world.assignment.subject, term=world.term, text="Très bon trimestre."
    )

    response = login(world.admin).get(class_url(world, "class_file", "pdf"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    text = " ".join(
        "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(response.content)).pages).split()
    )
    assert world.school.name in text
    assert "2nde 3" in text
    assert f"{s[0].last_name} {s[0].first_name}" in text
    assert "Très bon trimestre." in text
    assert "Appréciations manquantes (2)" in text
    assert str(world.teacher) in text  # each subject's teacher


def test_pdf_download_of_a_subject_is_the_teachers_page_with_the_averages(world, login):
    from pypdf import PdfReader

    s = students(world)
    subject, term = world.assignment.subject, world.term
    TermAssessment.objects.create(student=s[0], subject=subject, term=term, average="13.75")
    AppreciationFactory(student=s[0], subject=subject, term=term, text="Très bon trimestre.")

    response = login(world.teacher).get(assignment_url(world, "assignment_file", "pdf"))

    assert response.status_code == 200
    text = " ".join(
        "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(response.content)).pages).split()
    )
    for expected in (
        world.school.name,
        world.school_class.name,
        subject.name,
        str(world.teacher),
        term.label,
        term.school_year.name,
        f"{s[0].last_name} {s[0].first_name} 13,75 Très bon trimestre.",
        "Page 1 / 1",
    ):
        assert expected in text, expected


def test_class_csv_has_every_subject(world, login):
    english = shared_subject("HGGSP")
    TeachingAssignmentFactory(
        teacher=TeacherFactory(school=world.school),
        school_class=world.school_class,
        subject=english,
    )
    s = students(world)
    AppreciationFactory(student=s[0], subject=world.assignment.subject, term=world.term, text="HG.")
    AppreciationFactory(student=s[0], subject=english, term=world.term, text="HGGSP.")

    rows = read_csv_response(login(world.teacher).get(class_url(world, "class_file", "csv")))

    assert [(r[0], r[4], r[7]) for r in rows[1:]] == [
        (s[0].last_name, world.assignment.subject.name, "HG."),
        (s[0].last_name, english.name, "HGGSP."),
    ]


# --- The export screen ---------------------------------------------------------------------------


def test_export_screen_lists_missing_students_with_reasons(world, login):
    world.school.requires_head_approval = True
    world.school.appreciation_max_chars = 30
    world.school.save()
    s = students(world)
    subject, term = world.assignment.subject, world.term
    AppreciationFactory(
        student=s[0], subject=subject, term=term, status=Appreciation.Status.APPROVED, text="x" * 31
    )
    AppreciationFactory(
        student=s[1], subject=subject, term=term, status=Appreciation.Status.VALIDATED
    )

    response = login(world.teacher).get(assignment_url(world))

    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    missing = page[
        page.index('id="missing"') : page.index("</section>", page.index('id="missing"'))
    ]
    assert "2 appréciation(s) manquante(s)" in missing
    assert f"{s[1].last_name} {s[1].first_name} — Validée, en attente de l'approbation" in missing
    assert f"{s[2].last_name} {s[2].first_name} — Pas encore d'appréciation" in missing
    over = page[page.index('id="over-limit"') :]
    assert "au-delà de la limite de 30 caractères" in over
    assert f"{s[0].last_name} {s[0].first_name} — 31 caractères" in over
    assert "<strong>1</strong> / 3" in page
    # Copy buttons, with the script from a file: no inline script (CSP).
    assert 'data-copy="text-' in page
    assert "js/copy.js" in page
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) is None
    for fmt in ("csv", "gepi", "xlsx", "pdf"):
        assert assignment_url(world, "assignment_file", fmt) in page


def test_class_screen_has_no_gepi_file(world, login):
    page = login(world.admin).get(class_url(world)).content.decode()
    assert "Fichier d'import Gepi" not in page
    assert class_url(world, "class_file", "xlsx") in page


def test_copy_view_keeps_class_order_with_empty_lines(world, login):
    s = students(world)
    AppreciationFactory(
        student=s[0], subject=world.assignment.subject, term=world.term, text="Premier texte."
    )
    AppreciationFactory(
        student=s[2], subject=world.assignment.subject, term=world.term, text="Troisième texte."
    )
    AppreciationFactory(
        student=s[1],
        subject=world.assignment.subject,
        term=world.term,
        status="generated",
        text="Non.",
    )

    page = login(world.teacher).get(assignment_url(world, "assignment_copy")).content.decode()

    match = re.search(r"<textarea[^>]*>(.*?)</textarea>", page, re.S)
    # The HTML parser drops one newline right after <textarea>: the first line stays empty-able.
    value = html.unescape(match.group(1)).removeprefix("\n")
    assert value.split("\n") == ["Premier texte.", "", "Troisième texte."]
    assert "Non." not in page
    assert 'data-copy="all-' in page
    assert "1 appréciation(s) manquante(s)" in page


def test_export_index_lists_what_each_user_may_export(world, login):
    page = login(world.teacher).get(reverse("exports:index")).content.decode()
    assert assignment_url(world) in page
    assert class_url(world) in page
    assert "Jeu de données" not in page

    page = login(world.head).get(reverse("exports:index")).content.decode()
    assert assignment_url(world) in page
    assert class_url(world) not in page

    page = login(world.admin).get(reverse("exports:index")).content.decode()
    assert class_url(world) in page
    assert (
        reverse("exports:class", args=[world.other_assignment.school_class.pk, world.term.pk])
        in page
    )
    assert "Jeu de données" in page
    assert reverse("exports:dataset_file", args=["chat-jsonl"]) in page


def test_foreign_school_objects_never_show_on_the_index(world, login):
    page = login(world.admin).get(reverse("exports:index")).content.decode()
    foreign_class = world.foreign_assignment.school_class
    assert reverse("exports:class", args=[foreign_class.pk, world.foreign_term.pk]) not in page
    assert f"/bulletins/classe/{foreign_class.pk}/" not in page
