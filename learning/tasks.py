"""Celery tasks of the learning app: thin, take ids, the services do the work.

`train_adapter` goes to the `gpu` queue (CELERY_TASK_ROUTES: learning.tasks.train_*), the
worker that drafts: a run hands the worker back to waiting drafts (see
learning.services.training) and sends itself again behind them.
"""

from celery import shared_task
from celery.signals import worker_ready

from . import queue
from .services import training


@shared_task(name=queue.TRAIN_ADAPTER, acks_late=True, reject_on_worker_lost=True, bind=True)
def train_adapter(self, run_id: int) -> None:
    training.training_run_execute(run_id=run_id, hostname=self.request.hostname or "")


@worker_ready.connect
def resume_training_after_restart(sender, **kwargs) -> None:
    """A worker killed mid-run left it RUNNING with checkpoints: send it again, it resumes."""
    training.training_runs_recover(hostname=sender.hostname)
