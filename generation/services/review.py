"""The review workflow: propose, validate, rate, return and approve appreciations."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rapidfuzz.distance import Levenshtein

from classes.models import Student, Teacher, TeachingAssignment, Term
from classes.services import ensure_term_open
from common.text import strip_invisible

from .. import selectors
from ..checks import CheckFlag, check_text, collapse_spaces
from ..models import (
    Appreciation,
    Draft,
    Feedback,
)

logger = logging.getLogger(__name__)

logger = logging.getLogger(__name__)

MAX_REVIEW_SECONDS = 3600  # longer means the page was left open: not time spent reviewing


class ConflictError(ValidationError):
    """Someone saved the appreciation since this user loaded it."""

    def __init__(self, appreciation: Appreciation) -> None:
        who = appreciation.validated_by or appreciation.returned_by or appreciation.approved_by
        super().__init__(
            "Cette appréciation a été modifiée entre-temps"
            + (f" par {who}" if who else "")
            + " : voici le texte actuel. Relisez-le puis validez à nouveau.",
            code="conflict",
        )
        self.appreciation = appreciation


@transaction.atomic
def appreciation_propose(*, draft: Draft) -> Appreciation:
    """A generated draft reaches its student's appreciation.

    It becomes the text only while the text is the model's own (no appreciation yet, or one
    awaiting review; the earlier draft stays in the history). A text a human wrote
    (validated, approved, returned) is never replaced: the draft is offered beside it.
    """
    appreciation, created = Appreciation.objects.select_for_update().get_or_create(
        student_id=draft.student_id,
        subject_id=draft.subject_id,
        term_id=draft.term_id,
        defaults={"draft": draft, "text": draft.text},
    )
    if created or draft.pk in (appreciation.draft_id, appreciation.offered_draft_id):
        return appreciation
    if appreciation.is_human_text:
        appreciation.offered_draft = draft
        # The text did not change: the version stays, so nobody's save is refused for it.
        appreciation.save(update_fields=["offered_draft", "updated_at"])
        return appreciation
    appreciation.draft = draft
    appreciation.text = draft.text
    appreciation.version += 1
    appreciation.save()
    return appreciation


@transaction.atomic
def appreciation_dismiss_offer(*, appreciation: Appreciation, user: Teacher) -> Appreciation:
    """The teacher keeps their text and sets the offered draft aside (it stays in history)."""
    appreciation = Appreciation.objects.select_for_update().get(pk=appreciation.pk)
    _ensure_teacher_of(appreciation=appreciation, user=user)
    if appreciation.offered_draft_id is not None:
        appreciation.offered_draft = None
        appreciation.save(update_fields=["offered_draft", "updated_at"])
        logger.info("Appreciation %s: offered draft set aside by user %s", appreciation.pk, user.pk)
    return appreciation


def _ensure_teacher_of(*, appreciation: Appreciation, user: Teacher) -> None:
    if not TeachingAssignment.objects.filter(
        teacher=user,
        school_class_id=appreciation.student.school_class_id,
        subject_id=appreciation.subject_id,
    ).exists():
        raise PermissionDenied("Only the class's teacher in this subject decides.")
    ensure_term_open(appreciation.term)


def _check_version(appreciation: Appreciation | None, version: int) -> None:
    current = appreciation.version if appreciation else 0
    if current != version:
        raise ConflictError(appreciation)


class NeedsConfirmationError(ValidationError):
    """The text a teacher validates fails a check: they confirm, knowing which."""

    def __init__(self, flags: Sequence[CheckFlag]) -> None:
        super().__init__(
            "À vérifier avant de valider : " + " ".join(flag.message for flag in flags),
            code="needs_confirmation",
        )
        self.flags = list(flags)


def _clean_final_text(text: str, *, max_chars: int) -> str:
    # The import's cleaning: invisible characters (U+202E, zero-width, BOM) typed or pasted
    # into the form would otherwise reach Gepi, the spreadsheets and the printed page.
    # One line; the no-break spaces a teacher (or a suggestion) put before « ; : ! ? » stay.
    text = collapse_spaces(strip_invisible(text or ""))
    if not text:
        raise ValidationError("L'appréciation est vide : écrivez un texte avant de valider.")
    if len(text) > 2000:
        raise ValidationError("L'appréciation est trop longue (2 000 caractères au plus).")
    if len(text) > max_chars:
        # Pronote and the report card cut what exceeds the school's limit: never validate it.
        raise ValidationError(
            f"L'appréciation compte {len(text)} caractères : la limite du bulletin fixée par"
            f" l'établissement est de {max_chars}. Raccourcissez-la avant de valider.",
            code="too_long_for_report_card",
        )
    return text


def _chosen_draft(*, appreciation: Appreciation | None, draft_id: int | None) -> Draft | None:
    """The draft the validated text comes from: the offered one, an earlier one, or the
    current one by default."""
    current = appreciation.draft if appreciation else None
    if draft_id is None or appreciation is None or draft_id == appreciation.draft_id:
        return current
    return (
        Draft.objects.filter(
            pk=draft_id,
            student_id=appreciation.student_id,
            subject_id=appreciation.subject_id,
            term_id=appreciation.term_id,
            status=Draft.Status.GENERATED,
        ).first()
        or current
    )


@transaction.atomic
def draft_validate(
    *,
    assignment: TeachingAssignment,
    term: Term,
    student: Student,
    user: Teacher,
    text: str,
    version: int,
    seconds_spent: int | None = None,
    draft_id: int | None = None,
    confirmed: bool = False,
) -> Appreciation:
    """The teacher validates a student's appréciation: the draft as is, edited, or their own.

    Raises ConflictError when someone else saved it since `version` was read, and
    NeedsConfirmationError when the text fails a check and the teacher has not confirmed.
    `draft_id` names the draft the text was taken from (an offered or earlier draft).
    Records the feedback (draft against final text) for the next adapter.
    """
    if assignment.teacher_id != user.pk or student.school_class_id != assignment.school_class_id:
        raise PermissionDenied("Only the assignment's teacher validates its appreciations.")
    ensure_term_open(term)
    school = assignment.school_class.school
    final_text = _clean_final_text(text, max_chars=school.appreciation_max_chars)
    appreciation = (
        # of=self: PostgreSQL cannot lock the nullable side of the join to the draft.
        Appreciation.objects.select_for_update(of=("self",))
        .select_related("draft")
        .filter(student=student, subject_id=assignment.subject_id, term=term)
        .first()
    )
    _check_version(appreciation, version)
    if not confirmed:
        flags = check_text(
            final_text,
            forbidden_names=selectors.class_student_names(assignment=assignment),
            banned_phrases=selectors.school_banned_phrases(school_id=school.pk),
            typographic_spaces=school.typographic_spaces,
        )
        if flags:
            raise NeedsConfirmationError(flags)
    draft = _chosen_draft(appreciation=appreciation, draft_id=draft_id)
    if appreciation is None:
        appreciation = Appreciation(student=student, subject_id=assignment.subject_id, term=term)
    now = timezone.now()
    appreciation.text = final_text
    appreciation.draft = draft
    if draft is not None and draft.pk == appreciation.offered_draft_id:
        appreciation.offered_draft = None  # the teacher chose it
    appreciation.status = Appreciation.Status.VALIDATED
    appreciation.validated_by = user
    appreciation.validated_at = now
    appreciation.approved_by = None
    appreciation.approved_at = None
    appreciation.version += 0 if appreciation.pk is None else 1
    appreciation.save()
    draft_text = draft.text if draft else ""
    readiness = selectors.class_readiness(assignment=assignment, term=term, students=[student])[0]
    Feedback.objects.create(
        appreciation=appreciation,
        draft=draft,
        school_id=school.pk,
        validated_by=user,
        draft_text=draft_text,
        final_text=final_text,
        edited=draft is None or final_text != draft_text,
        edit_distance=Levenshtein.distance(draft_text, final_text),
        seconds_spent=(
            None if seconds_spent is None else max(0, min(int(seconds_spent), MAX_REVIEW_SECONDS))
        ),
        flags=draft.flags if draft else [],
        prompt_messages=draft.prompt_messages if draft else [],
        prompt_version=draft.prompt_version if draft else "",
        model_base=draft.model_base if draft else "",
        model_adapter=draft.model_adapter if draft else "",
        model_version_id=draft.model_version_id if draft else None,
        inputs=selectors.dataset_inputs(
            student=student, assignment=assignment, term=term, readiness=readiness
        ),
    )
    logger.info("Appreciation %s validated by user %s", appreciation.pk, user.pk)
    return appreciation


@transaction.atomic
def feedback_rate(*, feedback: Feedback, user: Teacher, rating: str, reason: str = "") -> Feedback:
    if feedback.validated_by_id != user.pk:
        raise PermissionDenied("Only the teacher who validated rates the draft.")
    if rating not in Feedback.Rating.values:
        raise ValidationError("Choisissez 👍 ou 👎.")
    if reason and reason not in Feedback.Reason.values:
        raise ValidationError("Raison inconnue.")
    feedback.rating = rating
    feedback.reason = reason if rating == Feedback.Rating.DOWN else ""
    feedback.save(update_fields=["rating", "reason"])
    return feedback


def _ensure_heads_subject(*, user: Teacher, subject_id: int) -> None:
    if not user.is_department_head or not user.headed_subjects.filter(pk=subject_id).exists():
        raise PermissionDenied("Only a head of this subject reviews it.")


def _head_check(*, appreciation: Appreciation, user: Teacher) -> None:
    _ensure_heads_subject(user=user, subject_id=appreciation.subject_id)
    if appreciation.student.school_class.school_id != user.school_id:
        raise PermissionDenied("Another school's appreciation.")
    ensure_term_open(appreciation.term)


@transaction.atomic
def appreciation_approve(
    *, appreciation: Appreciation, user: Teacher, version: int
) -> Appreciation:
    appreciation = Appreciation.objects.select_for_update().get(pk=appreciation.pk)
    _head_check(appreciation=appreciation, user=user)
    _check_version(appreciation, version)
    if appreciation.status != Appreciation.Status.VALIDATED:
        raise ValidationError(
            "Seule une appréciation validée par l'enseignant peut être approuvée."
        )
    appreciation.status = Appreciation.Status.APPROVED
    appreciation.approved_by = user
    appreciation.approved_at = timezone.now()
    appreciation.version += 1
    appreciation.save()
    return appreciation


@transaction.atomic
def appreciation_approve_all(*, assignment: TeachingAssignment, term: Term, user: Teacher) -> int:
    """Approve every validated appréciation of one class in a subject the user heads."""
    _ensure_heads_subject(user=user, subject_id=assignment.subject_id)
    ensure_term_open(term)
    return Appreciation.objects.filter(
        student__school_class_id=assignment.school_class_id,
        subject_id=assignment.subject_id,
        term=term,
        status=Appreciation.Status.VALIDATED,
    ).update(
        status=Appreciation.Status.APPROVED,
        approved_by=user,
        approved_at=timezone.now(),
        version=F("version") + 1,
    )


@transaction.atomic
def appreciation_return(
    *, appreciation: Appreciation, user: Teacher, comment: str, version: int
) -> Appreciation:
    """Send a validated appréciation back to its teacher with a comment."""
    appreciation = Appreciation.objects.select_for_update().get(pk=appreciation.pk)
    _head_check(appreciation=appreciation, user=user)
    _check_version(appreciation, version)
    comment = " ".join((comment or "").split())
    if not comment:
        raise ValidationError("Expliquez à l'enseignant ce qu'il faut revoir.")
    if appreciation.status not in (Appreciation.Status.VALIDATED, Appreciation.Status.APPROVED):
        raise ValidationError("Seule une appréciation validée peut être renvoyée.")
    appreciation.status = Appreciation.Status.RETURNED
    appreciation.return_comment = comment
    appreciation.returned_by = user
    appreciation.returned_at = timezone.now()
    appreciation.approved_by = None
    appreciation.approved_at = None
    appreciation.version += 1
    appreciation.save()
    return appreciation
