"""Celery tasks: thin, take ids, the services do the work. Routed to the `gpu` queue."""

from celery import shared_task

from . import services


@shared_task(name="generation.tasks.generate_drafts", acks_late=True, reject_on_worker_lost=True,
             bind=True)
def generate_drafts(self, job_id: int) -> None:
    services.job_run(job_id=job_id, hostname=self.request.hostname or "")
