"""Sends training runs to the GPU worker by task name, after commit.

The services send here and never import `learning.tasks`; the tasks import the services (one
direction). The task is found in Celery's registry by name, so whoever patches the task's
`delay_on_commit` (the tests) intercepts the send.
"""

from celery import current_app

TRAIN_ADAPTER = "learning.tasks.train_adapter"


def send_training_run(run_id: int) -> None:
    """Queued on the `gpu` queue (CELERY_TASK_ROUTES), behind any drafting already waiting."""
    current_app.tasks[TRAIN_ADAPTER].delay_on_commit(run_id)
