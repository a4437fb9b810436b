"""Celery tasks of the learning loop: thin, take ids, the services do the work."""

from celery import shared_task

# --- The evaluation of a model version (agent "evaluation"); routed to the `gpu` queue by
# CELERY_TASK_ROUTES. Idempotent: a finished (or failed) evaluation is not done again; a
# running one is a redelivery after a worker died, and is done again from the start.
from . import evaluation as evaluation_services


@shared_task(name=evaluation_services.EVALUATE_VERSION, acks_late=True, reject_on_worker_lost=True)
def evaluate_version(evaluation_id: int) -> None:
    evaluation_services.model_evaluation_run(evaluation_id=evaluation_id)


# --- end of the evaluation block ---
