"""One student order everywhere: French alphabetical order (ICU), whatever the database and its
collation, kept up to date however students are written."""

from __future__ import annotations

import html
import importlib
import re

import pytest
from django.apps import apps
from django.db import connection
from django.urls import reverse

from classes.collation import student_sort_key
from classes.models import Student
from classes.selectors import class_sheet
from tests.factories import (
    FRENCH_CLASS_ORDER,
    PASSWORD,
    SchoolClassFactory,
    StudentFactory,
    TeachingAssignmentFactory,
    french_class_students,
    full_names,
)

EXPECTED = [f"{last} {first}" for last, first in FRENCH_CLASS_ORDER]


@pytest.fixture
def french_class(world):
    school_class = SchoolClassFactory(
        school=world.school, school_year=world.term.school_year, name="2nde 7"
    )
    french_class_students(school_class)
    return school_class


def test_python_code_point_order_is_wrong_for_this_class():
    # The control: what SQLite and PostgreSQL "C"/"C.UTF-8" do with these names.
    assert sorted(EXPECTED) != EXPECTED


def test_the_key_sorts_the_class_in_french_order():
    shuffled = list(reversed(FRENCH_CLASS_ORDER))
    ordered = sorted(shuffled, key=lambda name: student_sort_key(*name))
    assert ordered == FRENCH_CLASS_ORDER


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (("Bénard", "Lucie"), ("Bertrand", "Hugo")),  # accents: secondary only
        (("Lambert", "Inès"), ("LE GALL", "Yann")),  # case: tertiary only
        (("N'Diaye", "Awa"), ("Nguyen", "Minh")),  # the apostrophe is ignored
        (("Nguyen", "Minh"), ("Œuvray", "Paul")),  # Œ is O + E
        (("Œuvray", "Paul"), ("Oval", "Jean")),  # ... not something after Z
        (("Çelik", "Emre"), ("Cohen", "Léo")),  # Ç is a C
        (("Delacroix", "Anne"), ("de La Fontaine", "Jean")),  # spaces and particle ignored
        (("Martin", "Zoé"), ("Martinez", "Anne")),  # the whole last name first
        (("Dupont", "Anne"), ("DUPONT", "Zoé")),  # the first name before the case of the name
        (("Dupont", "Anne"), ("Dupont", "Éric")),
        (("Dupont", "Éric"), ("Dupont", "Eva")),
    ],
)
def test_pairs(before, after):
    assert student_sort_key(*before) < student_sort_key(*after)


def test_the_key_ignores_surrounding_spaces():
    assert student_sort_key("  Dupont ", " Anne") == student_sort_key("Dupont", "Anne")


def test_students_and_the_class_sheet_are_in_french_order(world, french_class):
    assignment = TeachingAssignmentFactory(teacher=world.teacher, school_class=french_class)

    assert full_names(french_class.students.all()) == EXPECTED
    assert full_names(Student.objects.filter(school_class=french_class)) == EXPECTED
    rows = class_sheet(assignment=assignment, term=world.term)
    assert full_names(r.student for r in rows) == EXPECTED


def test_a_renamed_student_moves(world, french_class):
    student = Student.objects.get(school_class=french_class, last_name="Vincent")
    student.last_name = "Abadie"
    student.save(update_fields=["last_name"])

    assert full_names(french_class.students.all())[0] == "Abadie Léa"
    student.refresh_from_db()
    assert bytes(student.sort_key) == student_sort_key("Abadie", "Léa")


def test_update_or_create_keeps_the_key(world, french_class):
    Student.objects.update_or_create(
        school_class=french_class, last_name="Vincent", defaults={"last_name": "Abadie"}
    )
    assert full_names(french_class.students.all())[0] == "Abadie Léa"


def test_bulk_writes_keep_the_key(world):
    school_class = SchoolClassFactory(school=world.school, school_year=world.term.school_year)
    Student.objects.bulk_create(
        [
            Student(school_class=school_class, last_name=last_name, first_name=first_name)
            for last_name, first_name in reversed(FRENCH_CLASS_ORDER)
        ]
    )
    assert full_names(school_class.students.all()) == EXPECTED

    bertrand = school_class.students.get(last_name="Bertrand")
    bertrand.last_name = "Zola"
    Student.objects.bulk_update([bertrand], ["last_name"])
    assert full_names(school_class.students.all())[-1] == "Zola Hugo"

    school_class.students.filter(last_name="Zola").update(last_name="Aubert")
    assert full_names(school_class.students.all())[0] == "Aubert Hugo"


def test_the_migration_fills_existing_rows(world, french_class):
    Student.objects.update(sort_key=b"")
    migration = importlib.import_module("classes.migrations.0003_student_sort_key_french")

    migration.fill_sort_keys(apps, None)

    assert full_names(french_class.students.all()) == EXPECTED
    for student in Student.objects.all():
        assert bytes(student.sort_key) == student_sort_key(student.last_name, student.first_name)


def test_the_order_does_not_depend_on_the_database_collation(world, french_class):
    """On PostgreSQL, ordering by name under the "C" collation (code points, like C.UTF-8 and
    SQLite) gets the class wrong; the sort key gets it right whatever the collation."""
    if connection.vendor != "postgresql":
        pytest.skip(
            "PostgreSQL only: SQLite has a single code-point collation, which the other tests"
            " already run under; set DATABASE_URL=postgres://… to run it"
        )
    from django.db.models.functions import Collate

    students = Student.objects.filter(school_class=french_class)
    by_c_collation = students.order_by(Collate("last_name", "C"), Collate("first_name", "C"), "pk")
    assert full_names(by_c_collation) != EXPECTED
    code_points = sorted(FRENCH_CLASS_ORDER, key=lambda name: (name[0].encode(), name[1].encode()))
    assert full_names(by_c_collation) == [f"{last} {first}" for last, first in code_points]
    assert full_names(students.order_by("sort_key", "pk")) == EXPECTED


def test_students_created_one_by_one_by_the_factory(world):
    school_class = SchoolClassFactory(school=world.school, school_year=world.term.school_year)
    StudentFactory(school_class=school_class, last_name="Zola", first_name="Émile")
    StudentFactory(school_class=school_class, last_name="Élie", first_name="Anne")
    assert full_names(school_class.students.all()) == ["Élie Anne", "Zola Émile"]


def test_the_admin_lists_and_sorts_students_in_french_order(world, french_class, client):
    assert client.login(username=world.admin.username, password=PASSWORD)
    url = reverse("admin:classes_student_changelist")
    row = re.compile(
        r'class="field-(?:name|last_name)"><a [^>]*>([^<]*)</a></th>'
        r'<td class="field-first_name">([^<]*)</td>'
    )
    for order, expected in (("", EXPECTED), ("1", EXPECTED), ("-1", EXPECTED[::-1])):
        query = {"school_class__id__exact": french_class.pk, **({"o": order} if order else {})}
        page = client.get(url, query).content.decode()
        shown = [
            f"{html.unescape(last)} {html.unescape(first)}" for last, first in row.findall(page)
        ]
        assert shown == expected, order
