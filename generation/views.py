"""Generating, following and reviewing drafts; the department head's queue; quick drafts."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Min
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from classes import selectors as class_selectors
from classes.access import access_assignment_and_term_by_id, access_student_by_id
from classes.models import Student, TeachingAssignment, Term
from common.http import HtmxHttpRequest

from . import grammar, selectors, services
from .access import (
    access_appreciation_for_head_by_id,
    access_feedback_by_id,
    access_job_by_id,
    access_quick_draft_by_id,
)
from .forms import (
    FeedbackForm,
    JobStartForm,
    ProgressForm,
    QuickDraftForm,
    ReturnForm,
    ValidateForm,
    VersionForm,
)
from .models import Appreciation, Draft, Feedback, FinalTexts, GenerationJob, QuickDraft
from .prompts import PromptInputs


def _drafts_settled_until(job: GenerationJob | None, now, *, since=None):
    """The time up to which every draft of the job the page is shown is committed.

    A worker stamps generated_at before its transaction commits: a draft stamped before `now`
    but committed after the page's query would fall between two polls and never reach the
    page. Every draft still running (or not yet claimed) is stamped after its claim, so the
    window stops at the oldest running claim; what lies before it is committed.
    """
    if job is None:
        return now
    oldest_claim = (
        job.drafts.filter(status=Draft.Status.RUNNING)
        .order_by()
        .aggregate(oldest=Min("claimed_at"))["oldest"]
    )
    if oldest_claim is not None:
        now = min(now, oldest_claim)
    return max(since, now) if since is not None else now


def _row_settings(school) -> dict:
    """What every review row reads: the school's length limit and the feedback reasons."""
    return {
        "max_chars": school.appreciation_max_chars,
        "feedback_reasons": Feedback.Reason.choices,
    }


def _model_state(request) -> dict:
    """The model's state as the pages tell it: each worker's, and whether this user is told
    how to set the model up."""
    return {
        "worker_states": selectors.worker_states(),
        "sees_model_setup": selectors.sees_model_setup(user=request.user),
    }


def _is_test_model(rows) -> bool:
    """The random test model wrote these drafts (or the settings say it is in use)."""
    return settings.APPRECIATION_TEST_MODEL or any(r.draft and r.draft.is_test_model for r in rows)


def _review_context(*, request, assignment: TeachingAssignment, term: Term) -> dict:
    job = selectors.active_job(assignment=assignment, term=term) or (
        GenerationJob.objects.filter(assignment=assignment, term=term).first()
    )
    # Read only: a stalled job is sent again by the periodic recovery, never by a page view.
    # Before reading the rows: a draft committed after them comes with the next poll.
    since = _drafts_settled_until(job, timezone.now())
    rows = selectors.review_rows(assignment=assignment, term=term)
    editable = class_selectors.can_edit_assessments(
        user=request.user, assignment=assignment, term=term
    )
    plan = selectors.generation_plan(assignment=assignment, term=term)
    return {
        "assignment": assignment,
        "term": term,
        "terms": class_selectors.terms_of_year(school_class=assignment.school_class),
        "rows": rows,
        "plan": plan,
        "ready_count": len(plan.ready),
        "not_ready": plan.not_ready,
        "final_count": sum(1 for r in rows if r.appreciation and r.appreciation.is_final),
        "job": job,
        "progress": selectors.job_progress(job=job) if job else None,
        "since": since.isoformat(),
        "editable": editable,
        **_row_settings(assignment.school_class.school),
        **_model_state(request),
        "job_model_missing": selectors.job_failed_for_missing_model(job=job),
        # This process's grammar checker (the one validation uses), told to administrators.
        "grammar_unavailable": selectors.sees_model_setup(user=request.user)
        and not grammar.status().available,
        "test_model": _is_test_model(rows),
    }


@login_required
@require_GET
def review_page(request: HttpRequest, assignment_pk: int, term_pk: int) -> HttpResponse:
    assignment, term = access_assignment_and_term_by_id(
        request.user, assignment_pk, term_pk, scope="own"
    )
    return render(
        request,
        "generation/review.html",
        _review_context(request=request, assignment=assignment, term=term),
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
        context = _review_context(request=request, assignment=assignment, term=term)
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
    now = _drafts_settled_until(job, timezone.now(), since=since)
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
        **_row_settings(job.assignment.school_class.school),
        **_model_state(request),
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
        **_row_settings(assignment.school_class.school),
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


# --- Department head --------------------------------------------------------------------------


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
            "test_model": _is_test_model(rows),
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


# --- Quick draft -----------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def quick_draft(request: HttpRequest) -> HttpResponse:
    if request.user.school_id is None:
        raise Http404("No school")
    subjects = class_selectors.subjects_for_school(school=request.user.school)
    form = QuickDraftForm(request.POST or None, subjects=subjects)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        inputs = PromptInputs(
            subject_name=data["subject"],
            trimester=data["trimester"],
            averages=(data["average_1"], data["average_2"], data["average_3"]),
            behaviour=data["behaviour"],
            participation=data["participation"],
            work=data["work"],
        )
        quick = services.quick_draft_create(
            user=request.user, inputs=inputs, level_name=data["level"].name
        )
        return redirect("generation:quick_draft_result", quick.pk)
    return render(request, "generation/quick_draft.html", {"form": form})


@login_required
@require_GET
def quick_draft_result(request: HtmxHttpRequest, quick_pk: int) -> HttpResponse:
    quick = access_quick_draft_by_id(request.user, quick_pk)
    context = {
        "quick": quick,
        "test_model": settings.APPRECIATION_TEST_MODEL or quick.is_test_model,
        **_model_state(request),
    }
    if request.htmx:
        if quick.status != QuickDraft.Status.QUEUED:
            return HttpResponseStopPolling(
                render_to_string("generation/quick_draft.html#quick_result", context, request)
            )
        return render(request, "generation/quick_draft.html#quick_result", context)
    return render(request, "generation/quick_draft.html", context)
