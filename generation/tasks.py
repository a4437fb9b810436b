"""Celery tasks: thin, take ids, the services do the work. Routed to the `gpu` queue.

The tasks import the services, never the reverse: the services send by name (`generation.queue`)."""

from celery import shared_task
from celery.signals import worker_ready

from . import queue
from .services import quick_drafts, runner


@shared_task(name=queue.GENERATE_DRAFTS, acks_late=True, reject_on_worker_lost=True, bind=True)
def generate_drafts(self, job_id: int) -> None:
    runner.job_run(job_id=job_id, hostname=self.request.hostname or "")


@shared_task(name=queue.GENERATE_QUICK_DRAFT, acks_late=True)
def generate_quick_draft(quick_draft_id: int) -> None:
    quick_drafts.quick_draft_run(quick_draft_id=quick_draft_id)


@shared_task(name=queue.RECOVER_STALLED_JOBS, ignore_result=True)
def recover_stalled_jobs() -> int:
    """Celery beat, every APPRECIATION_RECOVERY_INTERVAL s (CELERY_BEAT_SCHEDULE): send again
    the jobs whose worker died or whose task was lost. On the `default` queue."""
    return runner.jobs_recover_stalled()


GENERATION_QUEUE = "gpu"


@worker_ready.connect
def recover_after_restart(sender, **kwargs) -> None:
    """When a worker is ready: a generation worker checks that its model is there (without
    loading it: that would take minutes) and records the answer; a worker killed mid-class
    held drafts: release them and send the job again."""
    if _consumes_generation_queue(sender):
        runner.worker_check_model(hostname=sender.hostname)
    runner.worker_recover(hostname=sender.hostname)


def _consumes_generation_queue(consumer) -> bool:
    """False for a worker of the `default` queue only (the web image: no model to check)."""
    try:
        queues = set(consumer.app.amqp.queues.consume_from)
    except AttributeError:
        return True
    return not queues or GENERATION_QUEUE in queues
