"""Who may open which job, appreciation, feedback or quick draft, for the views: one helper
per object, Zulip style. A missing object and a forbidden one answer the same 404.

The services check their own rules again (a department head's approval: review.py).
"""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404

from classes import selectors as class_selectors
from classes.models import Teacher

from .models import Appreciation, Feedback, GenerationJob, QuickDraft


def access_job_by_id(user: Teacher, job_id: int) -> GenerationJob:
    """A job of one of the user's own assignments."""
    return get_object_or_404(
        GenerationJob.objects.select_related("assignment__school_class__school", "term"),
        pk=job_id,
        assignment__in=class_selectors.own_assignments(user=user),
    )


def access_appreciation_for_head_by_id(user: Teacher, appreciation_id: int) -> Appreciation:
    """An appreciation of the user's school in a subject they head."""
    if not user.is_department_head:
        raise Http404("Not a department head")
    return get_object_or_404(
        Appreciation.objects.select_related("student__school_class", "term"),
        pk=appreciation_id,
        subject__in=user.headed_subjects.all(),
        student__school_class__school_id=user.school_id,
    )


def access_feedback_by_id(user: Teacher, feedback_id: int) -> Feedback:
    """A feedback row of the user's own validation."""
    return get_object_or_404(
        Feedback.objects.select_related("appreciation__student"),
        pk=feedback_id,
        validated_by=user,
        school_id=user.school_id,
    )


def access_quick_draft_by_id(user: Teacher, quick_draft_id: int) -> QuickDraft:
    """A quick draft the user asked for."""
    return get_object_or_404(QuickDraft, pk=quick_draft_id, requested_by=user)
