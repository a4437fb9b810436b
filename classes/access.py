"""Who may open which assignment, for the views: one helper per object, Zulip style.

A missing object and a forbidden one answer the same 404, so that an id tells nothing.
"""

from __future__ import annotations

from typing import Literal

from django.http import Http404
from django.shortcuts import get_object_or_404

from . import selectors
from .models import Student, Teacher, TeachingAssignment, Term

# own: the user's assignments; visible: theirs and those of the subjects they head (reading);
# headed: those of the subjects they head, their own included (a department head's review).
Scope = Literal["own", "visible", "headed"]


def _assignments(user: Teacher, scope: Scope):
    if scope == "own":
        return selectors.own_assignments(user=user)
    if scope == "visible":
        return selectors.visible_assignments(user=user)
    if scope == "headed":
        return selectors.headed_assignments(user=user, include_own=True)
    raise ValueError(f"Unknown scope {scope!r}")


def access_assignment_and_term_by_id(
    user: Teacher, assignment_id: int, term_id: int, *, scope: Scope = "own"
) -> tuple[TeachingAssignment, Term]:
    """The assignment among those `scope` lets the user open, and one of its year's terms."""
    assignment = get_object_or_404(_assignments(user, scope), pk=assignment_id)
    term = selectors.term_for_assignment(assignment=assignment, term_pk=term_id)
    if term is None:
        raise Http404("No such term for this class")
    return assignment, term


def access_student_by_id(assignment: TeachingAssignment, student_id: int) -> Student:
    """A student of the assignment's class (the assignment already passed its access)."""
    return get_object_or_404(Student, pk=student_id, school_class_id=assignment.school_class_id)
