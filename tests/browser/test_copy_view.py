"""The copy view for Pronote lists the class in French alphabetical order, as Pronote does:
accents, case, apostrophes, particles and ligatures do not reorder a name."""

from __future__ import annotations

import pytest
from django.urls import reverse

from generation.models import Appreciation
from tests.factories import SchoolClassFactory, StudentFactory, TeachingAssignmentFactory

pytestmark = pytest.mark.browser

# As entered (the database's order is not the French one).
NAMES = [
    "Bertrand",
    "Bénard",
    "LE GALL",
    "Lambert",
    "N'Diaye",
    "Nguyen",
    "Œuvray",
    "Vincent",
    "Çelik",
    "de La Fontaine",
]
FRENCH_ORDER = [
    "Bénard",
    "Bertrand",
    "Çelik",
    "de La Fontaine",
    "Lambert",
    "LE GALL",
    "N'Diaye",
    "Nguyen",
    "Œuvray",
    "Vincent",
]


def text_for(index: int) -> str:
    # Distinct and never a part of another one: the order of the texts gives the students'.
    return f"Appréciation n° {index:02d} : un trimestre sérieux et régulier."


@pytest.fixture
def copy_url(world):
    school_class = SchoolClassFactory(
        school=world.school, school_year=world.terms[0].school_year, name="1ère 4"
    )
    assignment = TeachingAssignmentFactory(teacher=world.teacher, school_class=school_class)
    for index, name in enumerate(NAMES):
        student = StudentFactory(school_class=school_class, last_name=name, first_name="Sacha")
        Appreciation.objects.create(
            student=student,
            subject=assignment.subject,
            term=world.term,
            status=Appreciation.Status.VALIDATED,
            text=text_for(index),
        )
    return reverse("exports:assignment_copy", args=[assignment.pk, world.term.pk])


def order_of_texts(text: str) -> list[str]:
    """The students, in the order their appréciation first appears in `text`."""
    positions = {name: text.find(text_for(index)) for index, name in enumerate(NAMES)}
    missing = [name for name, position in positions.items() if position < 0]
    assert not missing, f"appréciations not shown: {missing}"
    return sorted(positions, key=positions.get)


def test_copy_view_lists_students_in_french_order(page, log_in, world, copy_url):
    log_in(world.teacher)
    page.goto(copy_url)
    # What the page shows, whatever its markup: each line's text, with or without the name.
    shown = order_of_texts(page.locator("main").inner_text())
    assert shown == FRENCH_ORDER
    # « Tout copier »: one line per student, in the same order.
    for block in page.locator("main textarea").all():
        assert order_of_texts(block.input_value()) == FRENCH_ORDER
