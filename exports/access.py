"""Who may export what, for the views (anyone else gets the same 404 as a missing object).

- a class × subject: classes.access, scope "visible" (the teacher, the subject's heads);
- a whole class (every subject, for the class council): any teacher with an assignment in
  that class, and the school admin. The professeur principal is not modelled, so every
  teacher of the class stands in for them.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from classes import selectors as class_selectors
from classes.models import SchoolClass, Teacher, TeachingAssignment, Term


def exportable_classes(*, user: Teacher) -> QuerySet[SchoolClass]:
    """Classes whose whole report card (every subject) the user may export.

    The school admin: every class of the school. A teacher: the classes they teach in. The
    professeur principal is not modelled, so any teacher of the class stands in for them.
    """
    if not user.is_authenticated or user.school_id is None:
        return SchoolClass.objects.none()
    queryset = SchoolClass.objects.filter(school_id=user.school_id).select_related(
        "school", "school_year", "level"
    )
    if user.is_school_admin:
        return queryset
    return queryset.filter(
        pk__in=TeachingAssignment.objects.filter(teacher=user).values("school_class")
    )


def access_class_and_term_by_id(
    user: Teacher, class_id: int, term_id: int
) -> tuple[SchoolClass, Term]:
    school_class = get_object_or_404(exportable_classes(user=user), pk=class_id)
    term = class_selectors.term_of_class(school_class=school_class, term_pk=term_id)
    if term is None:
        raise Http404("No such term for this class")
    return school_class, term
