"""Sends generation work to the worker by task name, after commit.

The services enqueue here and never import `generation.tasks`; the tasks import the services
(one direction). The task objects are found in Celery's registry by name, so whoever patches
`tasks.generate_drafts.delay_on_commit` (the tests) still intercepts the send.
"""

from celery import current_app

GENERATE_DRAFTS = "generation.tasks.generate_drafts"
GENERATE_QUICK_DRAFT = "generation.tasks.generate_quick_draft"
RECOVER_STALLED_JOBS = "generation.tasks.recover_stalled_jobs"


def _task(name: str):
    return current_app.tasks[name]


def send_job(job_id: int, *, on_commit: bool = True) -> None:
    """One task for the job (each task claims batches until none is left)."""
    task = _task(GENERATE_DRAFTS)
    if on_commit:
        task.delay_on_commit(job_id)
    else:
        task.delay(job_id)


def send_quick_draft(quick_draft_id: int) -> None:
    _task(GENERATE_QUICK_DRAFT).delay_on_commit(quick_draft_id)
