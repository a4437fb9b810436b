"""Celery tasks of the learning app: thin, take ids, the services do the work.

Both go to the `gpu` queue (CELERY_TASK_ROUTES), the worker that drafts: a training run hands
the worker back to waiting drafts (see learning.services.training) and sends itself again
behind them.
"""

from celery import shared_task
from celery.signals import worker_ready

from . import evaluation as evaluation_services
from . import queue
from .services import training


@shared_task(name=queue.TRAIN_ADAPTER, acks_late=True, reject_on_worker_lost=True, bind=True)
def train_adapter(self, run_id: int) -> None:
    training.training_run_execute(run_id=run_id, hostname=self.request.hostname or "")


@worker_ready.connect
def resume_training_after_restart(sender, **kwargs) -> None:
    """A worker killed mid-run left it RUNNING with checkpoints: send it again, it resumes."""
    training.training_runs_recover(hostname=sender.hostname)


# Idempotent: a finished (or failed) evaluation is not done again; a running one is a
# redelivery after a worker died, and is done again from the start.
@shared_task(name=evaluation_services.EVALUATE_VERSION, acks_late=True, reject_on_worker_lost=True)
def evaluate_version(evaluation_id: int) -> None:
    evaluation_services.model_evaluation_run(evaluation_id=evaluation_id)
