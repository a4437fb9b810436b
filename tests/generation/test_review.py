"""Review services: validate (as is, edited, own text), conflicts, return, approve, feedback."""

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from generation import services
from generation.models import Appreciation, Draft, Feedback, GenerationJob
from generation.prompts import PROMPT_VERSION
from tests.factories import DraftFactory, TermAssessmentFactory

pytestmark = pytest.mark.django_db

DRAFT_TEXT = "Trimestre sérieux et régulier ; la participation orale doit encore progresser."


def make_draft(world, student, text=DRAFT_TEXT, flags=()):
    """A generated draft as the worker leaves it (no model needed for review logic)."""
    TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
    job, _ = GenerationJob.objects.get_or_create(
        assignment=world.assignment,
        term=world.term,
        status=GenerationJob.Status.SUCCEEDED,
        defaults={"requested_by": world.teacher},
    )
    draft = DraftFactory(
        job=job,
        student=student,
        subject=world.assignment.subject,
        term=world.term,
        status=Draft.Status.GENERATED,
        prompt_messages=[
            {"role": "system", "content": "Vous êtes une IA…"},
            {"role": "user", "content": "Veuillez rédiger…"},
        ],
        prompt_version=PROMPT_VERSION,
        text=text,
        flags=list(flags),
        attempts=1,
        model_base="base",
        model_adapter="adapter",
    )
    return services.appreciation_propose(draft=draft)


@pytest.fixture
def student(world):
    return world.school_class.students.first()


def validate(world, student, text, version, user=None, seconds=None):
    return services.draft_validate(
        assignment=world.assignment,
        term=world.term,
        student=student,
        user=user or world.teacher,
        text=text,
        version=version,
        seconds_spent=seconds,
    )


def test_generated_draft_awaits_review(world, student):
    appreciation = make_draft(world, student)
    assert appreciation.status == Appreciation.Status.GENERATED
    assert appreciation.text == DRAFT_TEXT
    assert not appreciation.is_final


def test_validate_as_is_records_unedited_feedback(world, student):
    appreciation = make_draft(world, student)
    validated = validate(world, student, DRAFT_TEXT, appreciation.version, seconds=42)
    assert validated.status == Appreciation.Status.VALIDATED
    assert validated.validated_by == world.teacher
    feedback = Feedback.objects.get()
    assert feedback.draft_text == feedback.final_text == DRAFT_TEXT
    assert not feedback.edited
    assert feedback.edit_distance == 0
    assert feedback.seconds_spent == 42
    assert feedback.prompt_version == PROMPT_VERSION
    assert (feedback.model_base, feedback.model_adapter) == ("base", "adapter")
    assert feedback.inputs["trimester"] == 2
    assert feedback.inputs["averages"] == [12.5, 12.5, None]
    assert feedback.validated_by == world.teacher


def test_validate_edited_text_measures_the_edit(world, student):
    appreciation = make_draft(world, student)
    final = DRAFT_TEXT.replace("doit encore", "peut encore")
    validate(world, student, final, appreciation.version)
    feedback = Feedback.objects.get()
    assert feedback.edited
    assert feedback.edit_distance == 3  # "doit" → "peut": d→p, o→e, i→u
    assert feedback.final_text == final


def test_own_text_without_any_draft(world, student):
    TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
    appreciation = validate(world, student, "  Très bon   trimestre.  ", 0)
    assert appreciation.text == "Très bon trimestre."
    assert appreciation.draft is None
    feedback = Feedback.objects.get()
    assert feedback.edited and feedback.draft_text == ""


@pytest.mark.parametrize(
    "invisible",
    ["\u202e", "\u202d", "\u2066", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"],
)
def test_invisible_characters_are_stripped_on_validate_as_on_import(world, student, invisible):
    """Bidi overrides, zero-width characters and BOMs would reach the report-card files."""
    TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
    typed = f"{invisible}Très bon{invisible} trimestre.{invisible}"
    appreciation = validate(world, student, typed, 0)
    assert appreciation.text == "Très bon trimestre."
    assert Feedback.objects.get().final_text == "Très bon trimestre."


def test_a_text_of_invisible_characters_only_is_empty(world, student):
    with pytest.raises(ValidationError, match="vide"):
        validate(world, student, "\u200b\u202e\ufeff", 0)


def test_seconds_spent_are_clamped(world, student):
    appreciation = make_draft(world, student)
    validate(world, student, DRAFT_TEXT, appreciation.version, seconds=10**7)
    assert Feedback.objects.get().seconds_spent == services.MAX_REVIEW_SECONDS


def test_empty_text_is_refused(world, student):
    appreciation = make_draft(world, student)
    with pytest.raises(ValidationError, match="vide"):
        validate(world, student, "   ", appreciation.version)
    assert Appreciation.objects.get().status == Appreciation.Status.GENERATED


def test_conflict_when_someone_saved_since(world, student):
    appreciation = make_draft(world, student)
    read_version = appreciation.version
    validate(world, student, "Premier enregistrement.", read_version)
    with pytest.raises(services.ConflictError) as excinfo:
        validate(world, student, "Second enregistrement.", read_version)
    assert "modifiée entre-temps" in excinfo.value.messages[0]
    assert excinfo.value.appreciation.text == "Premier enregistrement."
    assert Appreciation.objects.get().text == "Premier enregistrement."
    assert Feedback.objects.count() == 1


def test_only_the_teacher_validates(world, student):
    appreciation = make_draft(world, student)
    with pytest.raises(PermissionDenied):
        validate(world, student, DRAFT_TEXT, appreciation.version, user=world.head)


def test_closed_term_is_read_only(world, student):
    appreciation = make_draft(world, student)
    world.term.is_closed = True
    world.term.save()
    with pytest.raises(ValidationError, match="clos"):
        validate(world, student, DRAFT_TEXT, appreciation.version)


def test_head_returns_then_teacher_validates_again_then_head_approves(world, student):
    appreciation = make_draft(world, student)
    appreciation = validate(world, student, DRAFT_TEXT, appreciation.version)
    returned = services.appreciation_return(
        appreciation=appreciation,
        user=world.head,
        comment="Trop vague : citez un point précis.",
        version=appreciation.version,
    )
    assert returned.status == Appreciation.Status.RETURNED
    assert returned.return_comment == "Trop vague : citez un point précis."
    # Approving a returned one is refused: the teacher must validate again first.
    with pytest.raises(ValidationError):
        services.appreciation_approve(
            appreciation=returned, user=world.head, version=returned.version
        )
    again = validate(world, student, DRAFT_TEXT + " Méthode à consolider.", returned.version)
    approved = services.appreciation_approve(
        appreciation=again, user=world.head, version=again.version
    )
    assert approved.status == Appreciation.Status.APPROVED
    assert approved.approved_by == world.head
    assert Feedback.objects.count() == 2


def test_return_needs_a_comment(world, student):
    appreciation = make_draft(world, student)
    appreciation = validate(world, student, DRAFT_TEXT, appreciation.version)
    with pytest.raises(ValidationError):
        services.appreciation_return(
            appreciation=appreciation, user=world.head, comment="  ", version=appreciation.version
        )


@pytest.mark.parametrize("who", ["teacher", "other_teacher", "admin", "foreign_teacher"])
def test_only_heads_of_the_subject_approve(world, student, who):
    appreciation = make_draft(world, student)
    appreciation = validate(world, student, DRAFT_TEXT, appreciation.version)
    with pytest.raises(PermissionDenied):
        services.appreciation_approve(
            appreciation=appreciation, user=getattr(world, who), version=appreciation.version
        )


def test_approve_all_approves_only_validated(world):
    students = list(world.school_class.students.all())
    first = make_draft(world, students[0])
    validate(world, students[0], DRAFT_TEXT, first.version)
    make_draft(world, students[1])  # generated, not validated
    count = services.appreciation_approve_all(
        assignment=world.assignment, term=world.term, user=world.head
    )
    assert count == 1
    statuses = dict(Appreciation.objects.values_list("student_id", "status"))
    assert statuses == {students[0].pk: "approved", students[1].pk: "generated"}


def test_new_draft_is_offered_beside_a_validated_text(world, student):
    appreciation = make_draft(world, student, text="Premier brouillon.")
    validate(world, student, "Premier brouillon.", appreciation.version)
    job2 = GenerationJob.objects.create(
        assignment=world.assignment, term=world.term, status=GenerationJob.Status.SUCCEEDED
    )
    draft2 = Draft.objects.create(
        job=job2,
        student=student,
        subject=world.assignment.subject,
        term=world.term,
        status=Draft.Status.GENERATED,
        prompt_version=PROMPT_VERSION,
        text="Second brouillon.",
    )
    appreciation = services.appreciation_propose(draft=draft2)
    # "Régénérer" asked for a new draft: it is offered beside the validated text, which stays
    # in place (and on the report card) until the teacher validates something else.
    assert appreciation.status == Appreciation.Status.VALIDATED
    assert appreciation.text == "Premier brouillon."
    assert appreciation.offered_draft == draft2
    assert Draft.objects.filter(student=student).count() == 2


def test_feedback_rating_by_the_validating_teacher_only(world, student):
    appreciation = make_draft(world, student)
    validate(world, student, DRAFT_TEXT, appreciation.version)
    feedback = Feedback.objects.get()
    services.feedback_rate(feedback=feedback, user=world.teacher, rating="down", reason="tone")
    feedback.refresh_from_db()
    assert (feedback.rating, feedback.reason) == ("down", "tone")
    with pytest.raises(PermissionDenied):
        services.feedback_rate(feedback=feedback, user=world.head, rating="up")
    with pytest.raises(ValidationError):
        services.feedback_rate(feedback=feedback, user=world.teacher, rating="meh")


def test_class_job_skips_validated_students(world, tiny_model_settings):
    students = list(world.school_class.students.all())
    for s in students:
        TermAssessmentFactory(student=s, term=world.term, subject=world.assignment.subject)
    validate(world, students[0], "Déjà validée.", 0)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    assert set(job.drafts.values_list("student_id", flat=True)) == {s.pk for s in students[1:]}
    services.job_cancel(job=job, user=world.teacher)
    # "Régénérer" on that one student does ask again, on purpose.
    job = services.job_create(
        assignment=world.assignment, term=world.term, user=world.teacher, students=[students[0]]
    )
    assert list(job.drafts.values_list("student_id", flat=True)) == [students[0].pk]


def test_average_decimal_input_reaches_feedback(world, student):
    TermAssessmentFactory(
        student=student, term=world.term, subject=world.assignment.subject, average=Decimal("9.25")
    )
    validate(world, student, "Texte.", 0)
    assert Feedback.objects.get().inputs["averages"][1] == 9.25
