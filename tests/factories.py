"""factory_boy factories for the whole suite."""

from datetime import date
from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

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
from generation.models import Appreciation, Draft, Feedback, GenerationJob, ModelVersion
from learning.models import PanelItem, PanelJudgement

PASSWORD = "correct-horse-battery"


class SchoolFactory(DjangoModelFactory):
    class Meta:
        model = School

    name = factory.Sequence(lambda n: f"Lycée n°{n}")


class SchoolYearFactory(DjangoModelFactory):
    class Meta:
        model = SchoolYear

    school = factory.SubFactory(SchoolFactory)
    name = "2026-2027"
    start_date = date(2026, 9, 1)
    end_date = date(2027, 7, 4)


class TermFactory(DjangoModelFactory):
    class Meta:
        model = Term

    school_year = factory.SubFactory(SchoolYearFactory)
    number = 1
    start_date = factory.LazyAttribute(
        lambda o: {1: date(2026, 9, 1), 2: date(2026, 12, 1), 3: date(2027, 3, 1)}[o.number]
    )
    end_date = factory.LazyAttribute(
        lambda o: {1: date(2026, 11, 30), 2: date(2027, 2, 28), 3: date(2027, 7, 4)}[o.number]
    )


SHARED_SUBJECTS = {
    "HG": "Histoire-Géographie",
    "HGGSP": "Histoire-Géographie-Géopolitique-Science-Politique",
}
LEVELS = {"2nde": ("Seconde", 1), "1ere": ("Première", 2), "Tle": ("Terminale", 3)}


# get_or_create: the data migration creates these, but transactional tests flush them.
def shared_subject(short_name: str = "HG") -> Subject:
    subject, _ = Subject.objects.get_or_create(
        school=None, name=SHARED_SUBJECTS[short_name], defaults={"short_name": short_name}
    )
    return subject


def level(code: str = "2nde") -> Level:
    name, order = LEVELS[code]
    found, _ = Level.objects.get_or_create(code=code, defaults={"name": name, "order": order})
    return found


class SubjectFactory(DjangoModelFactory):
    class Meta:
        model = Subject

    school = factory.SubFactory(SchoolFactory)
    name = factory.Sequence(lambda n: f"Discipline {n}")


class TeacherFactory(DjangoModelFactory):
    class Meta:
        model = Teacher
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"prof{n}")
    first_name = "Claire"
    last_name = factory.Sequence(lambda n: f"Enseignant{n}")
    school = factory.SubFactory(SchoolFactory)
    role = Teacher.Role.TEACHER
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class SchoolClassFactory(DjangoModelFactory):
    class Meta:
        model = SchoolClass

    school = factory.SubFactory(SchoolFactory)
    school_year = factory.LazyAttribute(lambda o: SchoolYearFactory(school=o.school))
    level = factory.LazyFunction(level)
    name = factory.Sequence(lambda n: f"2nde {n}")


class StudentFactory(DjangoModelFactory):
    class Meta:
        model = Student

    school_class = factory.SubFactory(SchoolClassFactory)
    last_name = factory.Sequence(lambda n: f"Élève{n}")
    first_name = "Camille"


class TeachingAssignmentFactory(DjangoModelFactory):
    class Meta:
        model = TeachingAssignment

    teacher = factory.SubFactory(TeacherFactory)
    school_class = factory.SubFactory(
        SchoolClassFactory, school=factory.SelfAttribute("..teacher.school")
    )
    subject = factory.LazyFunction(shared_subject)


class TermAssessmentFactory(DjangoModelFactory):
    class Meta:
        model = TermAssessment

    student = factory.SubFactory(StudentFactory)
    subject = factory.LazyFunction(shared_subject)
    term = factory.SubFactory(TermFactory)
    average = Decimal("12.5")
    behaviour = Decimal("7")
    participation = Decimal("6")
    work = Decimal("8")


# A French class list as a teacher expects it: accents, case, apostrophes, particles and
# ligatures sort as in French (ICU), last name before first name. Code-point order (SQLite,
# PostgreSQL's "C" collation) gets almost every pair of it wrong.
FRENCH_CLASS_ORDER = [
    ("Bénard", "Lucie"),
    ("Bertrand", "Hugo"),
    ("Çelik", "Emre"),
    ("de La Fontaine", "Jean"),
    ("Lambert", "Inès"),
    ("LE GALL", "Yann"),
    ("Martin", "Élodie"),
    ("Martin", "Zoé"),
    ("Martinez", "Anne"),
    ("N'Diaye", "Awa"),
    ("Nguyen", "Minh"),
    ("Œuvray", "Paul"),
    ("Vincent", "Léa"),
]


class GenerationJobFactory(DjangoModelFactory):
    """A job as its fields say (give assignment, term, status)."""

    class Meta:
        model = GenerationJob


class DraftFactory(DjangoModelFactory):
    """A draft as its fields say (give job, student, subject, term, status, text...)."""

    class Meta:
        model = Draft


class AppreciationFactory(DjangoModelFactory):
    """A final appreciation (validated unless told otherwise) of a student in a subject."""

    class Meta:
        model = Appreciation

    status = Appreciation.Status.VALIDATED
    text = factory.LazyAttribute(lambda o: f"Trimestre sérieux pour {o.student.pk}.")


class FeedbackFactory(DjangoModelFactory):
    """A feedback row as its fields say (a validation, written directly)."""

    class Meta:
        model = Feedback


# --- Learning loop: model versions, the teachers' panel (issue 13, panel-dashboard) ---


class ModelVersionFactory(DjangoModelFactory):
    """A model version (a candidate unless told otherwise); names are unique."""

    class Meta:
        model = ModelVersion

    name = factory.Sequence(lambda n: f"version-{n}")
    base_model = "meta-llama/Llama-3.2-3B-Instruct"
    adapter = factory.Sequence(lambda n: f"/models/adapter-{n}")
    state = ModelVersion.State.CANDIDATE


class PanelItemFactory(DjangoModelFactory):
    """Two drafts for the same pseudonymous inputs, from two versions."""

    class Meta:
        model = PanelItem

    version_a = factory.SubFactory(ModelVersionFactory)
    version_b = factory.SubFactory(ModelVersionFactory)
    inputs = factory.LazyFunction(
        lambda: {
            "subject": "Histoire-Géographie",
            "level": "Seconde",
            "trimester": 2,
            "repeating": False,
            "averages": [12.5, 13.0, None],
            "behaviour": 7.0,
            "participation": 6.5,
            "work": 8.0,
        }
    )
    text_a = factory.Sequence(lambda n: f"Trimestre sérieux et régulier, travail n°{n} appliqué.")
    text_b = factory.Sequence(
        lambda n: f"Des efforts à poursuivre, participation n°{n} à développer."
    )


class PanelJudgementFactory(DjangoModelFactory):
    """A judgement as its fields say (give item, judge, verdict)."""

    class Meta:
        model = PanelJudgement


def french_class_students(school_class: SchoolClass) -> list[Student]:
    """The students of FRENCH_CLASS_ORDER, created in an order that is neither theirs nor the
    code-point one (so neither the ids nor a wrong sort can pass for the right order)."""
    created = {}
    for index in (7, 2, 11, 0, 9, 4, 12, 1, 5, 10, 3, 8, 6):
        last_name, first_name = FRENCH_CLASS_ORDER[index]
        created[index] = StudentFactory(
            school_class=school_class,
            last_name=last_name,
            first_name=first_name,
            gepi_login=f"eleve{index:02d}",  # the Gepi export needs one
        )
    return [created[index] for index in range(len(FRENCH_CLASS_ORDER))]


def full_names(students) -> list[str]:
    return [f"{s.last_name} {s.first_name}" for s in students]


# --- The evaluation of a model version (issue 13, agent "evaluation") ---


class ModelEvaluationFactory(DjangoModelFactory):
    """An evaluation as its fields say (give candidate and reference)."""

    class Meta:
        model = "learning.ModelEvaluation"


# --- Learning loop: training runs (issue 13, agent "training") ---------------------------------


class TrainingRunFactory(DjangoModelFactory):
    """A training run as its fields say (queued, SFT, from the active version by default)."""

    class Meta:
        model = "learning.TrainingRun"
