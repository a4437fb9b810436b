"""The teacher's review page: generate a class, follow the job, validate, rate."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from classes import selectors as class_selectors
from classes.access import access_assignment_and_term_by_id, access_student_by_id
from classes.models import Student
from common.http import HtmxHttpRequest

from .. import selectors, services
from ..access import (
    access_feedback_by_id,
    access_job_by_id,
)
from ..forms import (
    FeedbackForm,
    JobStartForm,
    ProgressForm,
    ValidateForm,
)
from ..models import Appreciation, Feedback, FinalTexts
from .context import drafts_settled_until, model_state, review_context, row_settings


@login_required
@require_GET
def review_page(request: HttpRequest, assignment_pk: int, term_pk: int) -> HttpResponse:
    assignment, term = access_assignment_and_term_by_id(
        request.user, assignment_pk, term_pk, scope="own"
    )
    return render(
        request,
        "generation/review.html",
        review_context(request=request, assignment=assignment, term=term),
    )


@login_required
@require_POST
def job_start(request: HtmxHttpRequest, assignment_pk: int, term_pk: int) -> HttpResponse:
    """Generate the class, or one student when the form names one ("Générer"/"Régénérer")."""
    assignment, term = access_assignment_and_term_by_id(
        request.user, assignment_pk, term_pk, scope="own"
    )
    form = JobStartForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Demande incomplète : rechargez la page et recommencez.")
    else:
        students = None
        if form.cleaned_data["student"]:
            students = [access_student_by_id(assignment, form.cleaned_data["student"])]
        try:
            services.job_create(
                assignment=assignment,
                term=term,
                user=request.user,
                students=students,
                finals=form.cleaned_data["finals"] or FinalTexts.SKIP,
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    url = reverse("generation:review", args=[assignment.pk, term.pk])
    if request.htmx:
        context = review_context(request=request, assignment=assignment, term=term)
        context["error_messages"] = [m.message for m in messages.get_messages(request)]
        return render(request, "generation/review.html#generation_panel", context)
    return redirect(url)


@login_required
@require_GET
def job_progress(request: HttpRequest, job_pk: int) -> HttpResponse:
    """The progress bar, plus the rows whose draft arrived since the last poll (out of band)."""
    job = access_job_by_id(request.user, job_pk)  # read only, like every GET
    form = ProgressForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest("Paramètre « since » invalide : rechargez la page.")
    since = form.cleaned_data["since"] or job.created_at
    # The window ends before the oldest batch still being written: its drafts are stamped when
    # its transaction starts and seen when it commits, so they come with a later poll.
    now = drafts_settled_until(job, timezone.now(), since=since)
    changed = list(
        # order_by(): Draft's default ordering would join the students for nothing.
        job.drafts.filter(generated_at__gt=since, generated_at__lte=now)
        .order_by()
        .values_list("student_id", "generated_at")
    )
    changed_students = [student_id for student_id, _ in changed]
    since = now
    rows = []
    if changed_students:
        rows = selectors.review_rows(
            assignment=job.assignment,
            term=job.term,
            students=list(Student.objects.filter(pk__in=changed_students)),
        )
    context = {
        "assignment": job.assignment,
        "term": job.term,
        "job": job,
        "progress": selectors.job_progress(job=job),
        "since": since.isoformat(),
        "oob_rows": rows,
        "editable": not job.term.is_closed,
        **row_settings(job.assignment.school_class.school),
        **model_state(request),
        "job_model_missing": selectors.job_failed_for_missing_model(job=job),
    }
    if not job.is_active:
        return HttpResponseStopPolling(
            render_to_string("generation/review.html#progress_response", context, request)
        )
    return render(request, "generation/review.html#progress_response", context)


@login_required
@require_POST
def job_cancel(request: HttpRequest, job_pk: int) -> HttpResponse:
    job = access_job_by_id(request.user, job_pk)
    services.job_cancel(job=job, user=request.user)
    messages.info(request, "Génération annulée : les brouillons déjà rédigés sont conservés.")
    return redirect("generation:review", job.assignment_id, job.term_id)


@login_required
@require_POST
def job_retry(request: HttpRequest, job_pk: int) -> HttpResponse:
    job = access_job_by_id(request.user, job_pk)
    try:
        services.job_retry(job=job, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("generation:review", job.assignment_id, job.term_id)


def _render_row(request, *, assignment, term, student, **extra) -> HttpResponse:
    row = selectors.review_rows(assignment=assignment, term=term, students=[student])[0]
    context = {
        "assignment": assignment,
        "term": term,
        "row": row,
        "editable": class_selectors.can_edit_assessments(
            user=request.user, assignment=assignment, term=term
        ),
        **row_settings(assignment.school_class.school),
        # The page's counter, refreshed out of band with the row.
        "final_count": selectors.final_count(assignment=assignment, term=term),
        "student_count": assignment.school_class.students.count(),
        **extra,
    }
    return render(request, "generation/review.html#row_response", context)


@login_required
@require_POST
def appreciation_validate(
    request: HttpRequest, assignment_pk: int, term_pk: int, student_pk: int
) -> HttpResponse:
    assignment, term = access_assignment_and_term_by_id(
        request.user, assignment_pk, term_pk, scope="own"
    )
    student = access_student_by_id(assignment, student_pk)
    form = ValidateForm(request.POST)
    error = conflict_text = ""
    confirm_flags = []
    if not form.is_valid():
        error = (
            " ".join(form.errors["text"])
            if list(form.errors) == ["text"]
            else "Formulaire incomplet : rechargez la page."
        )
    else:
        try:
            services.draft_validate(
                assignment=assignment,
                term=term,
                student=student,
                user=request.user,
                text=form.cleaned_data["text"],
                version=form.cleaned_data["version"],
                seconds_spent=form.cleaned_data.get("seconds_spent"),
                draft_id=form.cleaned_data.get("draft"),
                confirmed=form.cleaned_data.get("confirmed", False),
            )
        except services.ConflictError as exc:
            error = exc.messages[0]
            conflict_text = form.cleaned_data["text"]
        except services.NeedsConfirmationError as exc:
            confirm_flags = exc.flags
        except ValidationError as exc:
            error = " ".join(exc.messages)
    keep_text = (error and not conflict_text) or confirm_flags
    return _render_row(
        request,
        assignment=assignment,
        term=term,
        student=student,
        row_error=error,
        conflict_text=conflict_text,
        confirm_flags=confirm_flags,
        submitted_text=form.data.get("text", "") if keep_text else None,
        submitted_draft=form.data.get("draft", "") if keep_text else None,
    )


@login_required
@require_POST
def offer_dismiss(
    request: HttpRequest, assignment_pk: int, term_pk: int, student_pk: int
) -> HttpResponse:
    """« Garder mon texte »: the offered draft is set aside (it stays in the history)."""
    assignment, term = access_assignment_and_term_by_id(
        request.user, assignment_pk, term_pk, scope="own"
    )
    student = access_student_by_id(assignment, student_pk)
    appreciation = get_object_or_404(
        Appreciation, student=student, subject_id=assignment.subject_id, term=term
    )
    error = ""
    try:
        services.appreciation_dismiss_offer(appreciation=appreciation, user=request.user)
    except ValidationError as exc:
        error = " ".join(exc.messages)
    return _render_row(request, assignment=assignment, term=term, student=student, row_error=error)


@login_required
@require_POST
def feedback_rate(request: HttpRequest, feedback_pk: int) -> HttpResponse:
    feedback = access_feedback_by_id(request.user, feedback_pk)
    form = FeedbackForm(request.POST)
    error = ""
    if form.is_valid():
        services.feedback_rate(
            feedback=feedback,
            user=request.user,
            rating=form.cleaned_data["rating"],
            reason=form.cleaned_data["reason"],
        )
    else:
        error = "Retour non enregistré : choisissez 👍 ou 👎 (et une raison de la liste)."
    return render(
        request,
        "generation/review.html#feedback",
        {
            "feedback": feedback,
            "feedback_reasons": Feedback.Reason.choices,
            "saved": not error,
            "feedback_error": error,
        },
    )
