"""The department head's queue: review, approve or return the validated appreciations."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from classes.access import access_assignment_and_term_by_id
from classes.models import TeachingAssignment
from common.http import HtmxHttpRequest

from .. import selectors, services
from ..access import (
    access_appreciation_for_head_by_id,
)
from ..forms import (
    ReturnForm,
    VersionForm,
)
from ..models import Appreciation
from .context import is_test_model


@login_required
@require_GET
def head_queue(request: HttpRequest) -> HttpResponse:
    if not request.user.is_department_head:
        raise Http404("Not a department head")
    return render(
        request, "generation/head_queue.html", {"queue": selectors.head_queue(user=request.user)}
    )


@login_required
@require_GET
def head_review(request: HttpRequest, assignment_pk: int, term_pk: int) -> HttpResponse:
    assignment, term = access_assignment_and_term_by_id(
        request.user, assignment_pk, term_pk, scope="headed"
    )
    rows = selectors.review_rows(assignment=assignment, term=term)
    return render(
        request,
        "generation/head_review.html",
        {
            "assignment": assignment,
            "term": term,
            "rows": rows,
            "validated_count": selectors.validated_count(
                school_class_id=assignment.school_class_id,
                subject_id=assignment.subject_id,
                term=term,
            ),
            "max_chars": assignment.school_class.school.appreciation_max_chars,
            "test_model": is_test_model(rows),
        },
    )


def _head_row(request, appreciation: Appreciation, **extra) -> HttpResponse:
    appreciation.refresh_from_db()
    assignment = TeachingAssignment.objects.filter(
        school_class_id=appreciation.student.school_class_id, subject_id=appreciation.subject_id
    ).first()
    return render(
        request,
        "generation/head_review.html#head_row_response",
        {
            "appreciation": appreciation,
            "assignment": assignment,
            "term": appreciation.term,
            # « Tout approuver (N) » stays true without a reload.
            "validated_count": selectors.validated_count(
                school_class_id=appreciation.student.school_class_id,
                subject_id=appreciation.subject_id,
                term=appreciation.term,
            ),
            **extra,
        },
    )


@login_required
@require_POST
def appreciation_approve(request: HttpRequest, appreciation_pk: int) -> HttpResponse:
    appreciation = access_appreciation_for_head_by_id(request.user, appreciation_pk)
    form = VersionForm(request.POST)
    error = ""
    try:
        if not form.is_valid():
            raise ValidationError("Formulaire incomplet : rechargez la page.")
        services.appreciation_approve(
            appreciation=appreciation, user=request.user, version=form.cleaned_data["version"]
        )
    except ValidationError as exc:
        error = " ".join(exc.messages)
    return _head_row(request, appreciation, row_error=error)


@login_required
@require_POST
def appreciation_return(request: HttpRequest, appreciation_pk: int) -> HttpResponse:
    appreciation = access_appreciation_for_head_by_id(request.user, appreciation_pk)
    form = ReturnForm(request.POST)
    error = ""
    try:
        if not form.is_valid():
            raise ValidationError("Écrivez un commentaire pour l'enseignant.")
        services.appreciation_return(
            appreciation=appreciation,
            user=request.user,
            comment=form.cleaned_data["comment"],
            version=form.cleaned_data["version"],
        )
    except ValidationError as exc:
        error = " ".join(exc.messages)
    return _head_row(request, appreciation, row_error=error)


@login_required
@require_POST
def approve_all(request: HtmxHttpRequest, assignment_pk: int, term_pk: int) -> HttpResponse:
    assignment, term = access_assignment_and_term_by_id(
        request.user, assignment_pk, term_pk, scope="headed"
    )
    try:
        count = services.appreciation_approve_all(
            assignment=assignment, term=term, user=request.user
        )
        messages.success(request, f"{count} appréciation(s) approuvée(s).")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    url = reverse("generation:head_review", args=[assignment.pk, term.pk])
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)
