"""The demo school that `manage.py seed_demo` and `make run` create."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from .models import (
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

DEMO_SCHOOL_NAME = "Lycée de démonstration Marie-Curie"
DEMO_PASSWORD = "demo-appreciation"  # noqa: S105 - printed to the user on purpose
DEMO_LOGINS = {
    "teacher": "prof.demo",
    "department_head": "coord.hg",
    "school_admin": "admin.demo",
}

FIRST_NAMES = [
    "Léa",
    "Hugo",
    "Chloé",
    "Lucas",
    "Manon",
    "Nathan",
    "Inès",
    "Enzo",
    "Camille",
    "Louis",
    "Jade",
    "Gabriel",
    "Sarah",
    "Arthur",
    "Zoé",
    "Théo",
    "Emma",
    "Rayan",
    "Lina",
    "Noah",
    "Maëlys",
    "Adam",
    "Clara",
    "Yanis",
    "Anaïs",
    "Mathis",
    "Louise",
    "Ethan",
    "Océane",
    "Sacha",
]
LAST_NAMES = [
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefèvre",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
    "Morel",
    "Girard",
    "André",
    "Lefebvre",
    "Mercier",
    "Dupont",
    "Lambert",
    "Bonnet",
    "François",
    "Martinez",
    "N'Diaye",
    "Benali",
    "Nguyen",
    "Le Gall",
]


@dataclass(frozen=True)
class DemoResult:
    school: School
    created: bool
    logins: dict[str, str]
    password: str


def school_year_bounds(today: date) -> tuple[date, date, str]:
    start_year = today.year if today.month >= 8 else today.year - 1
    return date(start_year, 9, 1), date(start_year + 1, 7, 4), f"{start_year}-{start_year + 1}"


def create_year_and_terms(*, school: School, today: date) -> tuple[SchoolYear, list[Term]]:
    """This school year with its three trimesters. Trimester 2 is the current one, so a year's
    evolution shows; trimester 1 is closed (read-only), as after its class council."""
    year_start, year_end, year_name = school_year_bounds(today)
    year = SchoolYear.objects.create(
        school=school, name=year_name, start_date=year_start, end_date=year_end
    )
    t2_start = today - timedelta(days=20)
    terms = [
        Term.objects.create(
            school_year=year,
            number=1,
            start_date=t2_start - timedelta(days=90),
            end_date=t2_start - timedelta(days=1),
            is_closed=True,
        ),
        Term.objects.create(
            school_year=year,
            number=2,
            start_date=t2_start,
            end_date=t2_start + timedelta(days=89),
        ),
        Term.objects.create(
            school_year=year,
            number=3,
            start_date=t2_start + timedelta(days=90),
            end_date=t2_start + timedelta(days=180),
        ),
    ]
    return year, terms


def _rating(rng: random.Random, base: float) -> Decimal:
    return Decimal(str(max(0, min(10, round(base + rng.uniform(-2, 2))))))


@transaction.atomic
def seed_demo(*, today: date | None = None, seed: int = 2026) -> DemoResult:
    """Create the demo school once; running it again changes nothing."""
    today = today or timezone.localdate()
    existing = School.objects.filter(name=DEMO_SCHOOL_NAME).first()
    if existing is not None:
        return DemoResult(existing, False, DEMO_LOGINS, DEMO_PASSWORD)

    rng = random.Random(seed)
    school = School.objects.create(name=DEMO_SCHOOL_NAME, uai="0000000X")
    year, terms = create_year_and_terms(school=school, today=today)
    history = Subject.objects.get(school=None, short_name="HG")
    hggsp = Subject.objects.get(school=None, short_name="HGGSP")

    teacher = Teacher.objects.create_user(
        username=DEMO_LOGINS["teacher"],
        password=DEMO_PASSWORD,
        first_name="Claire",
        last_name="Lemaire",
        school=school,
        role=Teacher.Role.TEACHER,
    )
    head = Teacher.objects.create_user(
        username=DEMO_LOGINS["department_head"],
        password=DEMO_PASSWORD,
        first_name="Paul",
        last_name="Garnier",
        school=school,
        role=Teacher.Role.DEPARTMENT_HEAD,
    )
    head.headed_subjects.add(history, hggsp)
    Teacher.objects.create_user(
        username=DEMO_LOGINS["school_admin"],
        password=DEMO_PASSWORD,
        first_name="Nadia",
        last_name="Roussel",
        school=school,
        role=Teacher.Role.SCHOOL_ADMIN,
        is_staff=True,
    )

    classes = [
        (Level.objects.get(code="2nde"), "2nde 3", history),
        (Level.objects.get(code="1ere"), "1ère 2", hggsp),
    ]
    for level, name, subject in classes:
        school_class = SchoolClass.objects.create(
            school=school, school_year=year, level=level, name=name
        )
        TeachingAssignment.objects.create(
            teacher=teacher, school_class=school_class, subject=subject
        )
        # The head also teaches HG in the second class, so their dashboard is not empty.
        if subject == hggsp:
            TeachingAssignment.objects.create(
                teacher=head, school_class=school_class, subject=history
            )
        names = rng.sample([(ln, fn) for ln in LAST_NAMES for fn in FIRST_NAMES], 30)
        for last_name, first_name in sorted(names):
            student = Student.objects.create(
                school_class=school_class,
                last_name=last_name,
                first_name=first_name,
                is_repeating=rng.random() < 0.07,
                # So that the demo's Gepi export has every student (Gepi matches its login).
                gepi_login=f"{slugify(last_name)}.{slugify(first_name)}",
            )
            level_of_student = rng.uniform(6, 17)
            attitude = rng.uniform(3, 9)
            for term in terms[:2]:
                average = max(0.0, min(20.0, level_of_student + rng.uniform(-2.5, 2.5)))
                TermAssessment.objects.create(
                    student=student,
                    subject=subject,
                    term=term,
                    average=Decimal(str(round(average * 2) / 2)),
                    behaviour=_rating(rng, attitude + 1),
                    participation=_rating(rng, attitude),
                    work=_rating(rng, attitude + (level_of_student - 11) / 3),
                )
    return DemoResult(school, True, DEMO_LOGINS, DEMO_PASSWORD)
