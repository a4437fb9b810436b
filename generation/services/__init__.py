"""Writes for generation, one module per job (HackSoft style: the tasks import the runner,
never the reverse; the web side enqueues through `generation.queue`):

- `jobs`: the web side's job commands (create, cancel, retry);
- `runner`: the worker's runner (claim, draft, write; recover stalled jobs and workers);
- `review`: the review workflow (propose, validate, rate, return, approve);
- `quick_drafts`: the model card's quick draft (created on the web, drafted by the worker).

The face below hands on the commands that views and tests call, so call sites stay short.
"""

from .jobs import JobAlreadyActiveError, job_cancel, job_create, job_retry
from .quick_drafts import quick_draft_create, quick_draft_run
from .review import (
    MAX_REVIEW_SECONDS,
    ConflictError,
    NeedsConfirmationError,
    appreciation_approve,
    appreciation_approve_all,
    appreciation_dismiss_offer,
    appreciation_propose,
    appreciation_return,
    draft_validate,
    feedback_rate,
)
from .runner import (
    GENERATION_FAILED_MESSAGE,
    MAX_CLAIMS,
    MAX_REDELIVERIES,
    MAX_RESENDS,
    TOO_MANY_DELIVERIES_MESSAGE,
    job_recover,
    job_run,
    jobs_recover_stalled,
    lease_renew,
    storable,
    worker_check_model,
    worker_recover,
    worker_state_set,
)

__all__ = [
    "GENERATION_FAILED_MESSAGE",
    "MAX_CLAIMS",
    "MAX_REDELIVERIES",
    "MAX_RESENDS",
    "MAX_REVIEW_SECONDS",
    "TOO_MANY_DELIVERIES_MESSAGE",
    "ConflictError",
    "JobAlreadyActiveError",
    "NeedsConfirmationError",
    "appreciation_approve",
    "appreciation_approve_all",
    "appreciation_dismiss_offer",
    "appreciation_propose",
    "appreciation_return",
    "draft_validate",
    "feedback_rate",
    "job_cancel",
    "job_create",
    "job_recover",
    "job_retry",
    "job_run",
    "jobs_recover_stalled",
    "lease_renew",
    "quick_draft_create",
    "quick_draft_run",
    "storable",
    "worker_check_model",
    "worker_recover",
    "worker_state_set",
]
