"""The review pages' context, built in one place: the rows, the job and its progress, the
school's limits, the model's state. Read only: a stalled job is sent again by the periodic
recovery, never by a page view."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Min
from django.utils import timezone

from classes import selectors as class_selectors
from classes.models import TeachingAssignment, Term

from .. import grammar, selectors
from ..models import Draft, Feedback, GenerationJob


def drafts_settled_until(job: GenerationJob | None, now, *, since=None):
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


def row_settings(school) -> dict:
    """What every review row reads: the school's length limit and the feedback reasons."""
    return {
        "max_chars": school.appreciation_max_chars,
        "feedback_reasons": Feedback.Reason.choices,
    }


def model_state(request) -> dict:
    """The model's state as the pages tell it: each worker's, and whether this user is told
    how to set the model up."""
    return {
        "worker_states": selectors.worker_states(),
        "sees_model_setup": selectors.sees_model_setup(user=request.user),
    }


def is_test_model(rows) -> bool:
    """The random test model wrote these drafts (or the settings say it is in use)."""
    return settings.APPRECIATION_TEST_MODEL or any(r.draft and r.draft.is_test_model for r in rows)


def review_context(*, request, assignment: TeachingAssignment, term: Term) -> dict:
    job = selectors.active_job(assignment=assignment, term=term) or (
        GenerationJob.objects.filter(assignment=assignment, term=term).first()
    )
    # Read only: a stalled job is sent again by the periodic recovery, never by a page view.
    # Before reading the rows: a draft committed after them comes with the next poll.
    since = drafts_settled_until(job, timezone.now())
    rows = selectors.review_rows(assignment=assignment, term=term)
    editable = class_selectors.can_edit_assessments(
        user=request.user, assignment=assignment, term=term
    )
    plan = selectors.generation_plan_of_rows(rows)
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
        **row_settings(assignment.school_class.school),
        **model_state(request),
        "job_model_missing": selectors.job_failed_for_missing_model(job=job),
        # This process's grammar checker (the one validation uses), told to administrators.
        "grammar_unavailable": selectors.sees_model_setup(user=request.user)
        and not grammar.status().available,
        "test_model": is_test_model(rows),
    }
