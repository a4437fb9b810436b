"""Every list of students that leaves the platform or that a teacher reads is in the same French
alphabetical order (classes.collation): the Pronote copy above all, where a line pasted in a
different order lands in front of the wrong student."""

from __future__ import annotations

import csv
import html
import io
import re

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from exports import selectors as export_selectors
from generation.models import Appreciation, Draft, GenerationJob
from generation.selectors import review_rows
from tests.factories import (
    FRENCH_CLASS_ORDER,
    SchoolClassFactory,
    TeachingAssignmentFactory,
    TermAssessmentFactory,
    french_class_students,
    full_names,
)

EXPECTED = [f"{last} {first}" for last, first in FRENCH_CLASS_ORDER]


def text_of(student) -> str:
    return f"Appréciation de {student.first_name}."


@pytest.fixture
def french(world):
    """A class of world.teacher (HG, headed by world.head), every student with a validated
    appréciation and complete inputs for world.term."""
    school_class = SchoolClassFactory(
        school=world.school, school_year=world.term.school_year, name="2nde 7"
    )
    assignment = TeachingAssignmentFactory(
        teacher=world.teacher, school_class=school_class, subject=world.assignment.subject
    )
    students = french_class_students(school_class)
    for index, student in enumerate(students):
        student.external_id = f"eleve{index:02d}"
        student.save(update_fields=["external_id"])
        TermAssessmentFactory(student=student, term=world.term, subject=assignment.subject)
        Appreciation.objects.create(
            student=student,
            subject=assignment.subject,
            term=world.term,
            status=Appreciation.Status.VALIDATED,
            text=text_of(student),
        )
    return assignment


def url(name, assignment, term, *extra):
    return reverse(name, args=[assignment.pk, term.pk, *extra])


def class_url(name, assignment, term, *extra):
    return reverse(name, args=[assignment.school_class_id, term.pk, *extra])


def names_in(page: str) -> list[str]:
    """The expected names in the order the page shows them (each one's first appearance)."""
    positions = {name: page.find(html.escape(name)) for name in EXPECTED}
    assert all(p >= 0 for p in positions.values()), positions
    return sorted(positions, key=positions.get)


def test_review_rows_and_export_selectors(world, french):
    rows = review_rows(assignment=french, term=world.term)
    assert full_names(r.student for r in rows) == EXPECTED

    export = export_selectors.assignment_export(assignment=french, term=world.term)
    assert full_names(export.students) == EXPECTED
    assert [f"{line.last_name} {line.first_name}" for line in export.lines()] == EXPECTED


def test_default_orderings_of_appreciations_and_drafts(world, french):
    job = GenerationJob.objects.create(assignment=french, term=world.term)
    for student in french.school_class.students.order_by("-pk"):
        Draft.objects.create(
            job=job, student=student, subject=french.subject, term=world.term, prompt_version="v"
        )

    appreciations = Appreciation.objects.filter(student__school_class=french.school_class)
    assert full_names(a.student for a in appreciations.select_related("student")) == EXPECTED
    assert full_names(d.student for d in job.drafts.select_related("student")) == EXPECTED


def test_copy_view_for_pronote(world, french, login):
    page = login(world.teacher).get(url("exports:assignment_copy", french, world.term))
    page = page.content.decode()

    textarea = re.search(r"<textarea[^>]*>(.*?)</textarea>", page, re.S).group(1)
    lines = html.unescape(textarea).removeprefix("\n").split("\n")
    assert lines == [f"Appréciation de {first}." for _, first in FRENCH_CLASS_ORDER]
    assert names_in(page) == EXPECTED


def test_class_copy_view(world, french, login):
    page = login(world.teacher).get(class_url("exports:class_copy", french, world.term))
    textarea = re.search(r"<textarea[^>]*>(.*?)</textarea>", page.content.decode(), re.S)
    lines = html.unescape(textarea.group(1)).removeprefix("\n").split("\n")
    assert lines == [f"Appréciation de {first}." for _, first in FRENCH_CLASS_ORDER]


def test_csv_export(world, french, login):
    response = login(world.teacher).get(url("exports:assignment_file", french, world.term, "csv"))
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig")), delimiter=";"))
    assert [f"{r[0]} {r[1]}" for r in rows[1:]] == EXPECTED


def test_gepi_export(world, french, login):
    response = login(world.teacher).get(url("exports:assignment_file", french, world.term, "gepi"))
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8")), delimiter=";"))
    assert [r[2] for r in rows[1:]] == [
        f"Appréciation de {first}." for _, first in FRENCH_CLASS_ORDER
    ]


def test_xlsx_export(world, french, login):
    response = login(world.teacher).get(url("exports:assignment_file", french, world.term, "xlsx"))
    sheet = load_workbook(io.BytesIO(response.content))["Appréciations"]
    assert [f"{r[0]} {r[1]}" for r in list(sheet.iter_rows(values_only=True))[1:]] == EXPECTED


def test_pdf_export_of_the_whole_class(world, french, login):
    from pypdf import PdfReader

    response = login(world.teacher).get(class_url("exports:class_file", french, world.term, "pdf"))
    pages = PdfReader(io.BytesIO(response.content)).pages
    text = " ".join("\n".join(p.extract_text() for p in pages).split())
    positions = {name: text.find(name) for name in EXPECTED}
    assert all(p >= 0 for p in positions.values()), positions
    assert sorted(positions, key=positions.get) == EXPECTED


@pytest.mark.parametrize("name", ["classes:class_page", "generation:review"])
def test_teacher_pages(world, french, login, name):
    page = login(world.teacher).get(url(name, french, world.term))
    assert page.status_code == 200
    assert names_in(page.content.decode()) == EXPECTED


def test_head_review_page(world, french, login):
    page = login(world.head).get(url("generation:head_review", french, world.term))
    assert page.status_code == 200
    assert names_in(page.content.decode()) == EXPECTED


def _buttons(page: str) -> list[dict[str, str]]:
    found = []
    for tag in re.findall(r"<button\b[^>]*>", page):
        attributes = re.findall(r'([\w-]+)="([^"]*)"', tag)
        found.append({name: html.unescape(value) for name, value in attributes})
    return found


def test_copy_view_puts_each_name_beside_its_text_with_a_button_per_student(world, french, login):
    students = list(french.school_class.students.all())
    missing = students[3]  # de La Fontaine: no final appréciation, no button, a visible gap
    Appreciation.objects.filter(student=missing).update(status=Appreciation.Status.GENERATED)

    page = login(world.teacher).get(url("exports:assignment_copy", french, world.term))
    page = page.content.decode()

    buttons = {b["aria-label"]: b for b in _buttons(page) if "data-copy" in b}
    for student in students:
        label = f"Copier l'appréciation de {student.last_name} {student.first_name}"
        if student == missing:
            assert label not in buttons
            continue
        target = buttons[label]["data-copy"]
        # The button copies the element holding this student's text, shown beside their name.
        item = re.search(
            rf'<li>\s*<strong[^>]*>([^<]*)</strong>\s*<span id="{target}">([^<]*)<', page
        )
        assert html.unescape(item.group(1)) == f"{student.last_name} {student.first_name}"
        assert html.unescape(item.group(2)) == text_of(student)
    subject = french.subject.name
    assert f"Tout copier : les appréciations de {subject}, dans l'ordre de la liste" in buttons
    assert re.search(r'<p id="copy-status"[^>]*role="status"[^>]*aria-live="polite"', page)
    # The script is a static file (the Content-Security-Policy allows no inline script).
    assert re.findall(r"<script\b[^>]*>", page)[-1].startswith('<script src="/static/js/copy.js"')
