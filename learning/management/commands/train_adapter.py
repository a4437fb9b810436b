"""Train a candidate adapter from the opted-in schools' feedback.

    python manage.py train_adapter                       # SFT from the active version, here
    python manage.py train_adapter --method dpo --start-from base --epochs 2
    python manage.py train_adapter --original-dataset appreciation.parquet --max-steps 200
    python manage.py train_adapter --enqueue             # on the GPU worker instead

Runs the training in this process (on this machine's GPU, or CPU) unless --enqueue; prints the
progress and the candidate version's name. The candidate is not active: evaluate it, then
promote it from the admin.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from learning.models import TrainingRun
from learning.services.training import TrainingRefused, training_run_create, training_run_execute


class Command(BaseCommand):
    help = "Train a candidate LoRA adapter from the validated feedback of the opted-in schools."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--method", choices=TrainingRun.Method.values, default="sft")
        parser.add_argument(
            "--start-from",
            choices=TrainingRun.StartFrom.values,
            help="The active version's adapter or a fresh LoRA on the base model"
            " (default: APPRECIATION_TRAINING_START_FROM).",
        )
        parser.add_argument("--epochs", type=float)
        parser.add_argument("--max-steps", type=int, help="Overrides --epochs when given.")
        parser.add_argument("--learning-rate", type=float)
        parser.add_argument("--batch-size", type=int)
        parser.add_argument(
            "--original-dataset",
            default="",
            help="A local Parquet or CSV copy of eltorio/appreciation, added to the train split.",
        )
        parser.add_argument(
            "--user", help="The superuser the run is recorded for (default: the first one)."
        )
        parser.add_argument(
            "--enqueue", action="store_true", help="Send the run to the GPU worker and return."
        )

    def handle(self, *args, **options) -> None:
        users = get_user_model().objects.filter(is_superuser=True, is_active=True)
        if options["user"]:
            users = users.filter(username=options["user"])
        user = users.order_by("pk").first()
        if user is None:
            raise CommandError("No active superuser to record the run for (see --user).")
        overrides = {
            "epochs": options["epochs"],
            "max_steps": options["max_steps"],
            "learning_rate": options["learning_rate"],
            "batch_size": options["batch_size"],
        }
        try:
            run = training_run_create(
                user=user,
                method=options["method"],
                start_from=options["start_from"],
                settings={key: value for key, value in overrides.items() if value is not None},
                original_dataset_path=options["original_dataset"],
                enqueue=options["enqueue"],
            )
        except TrainingRefused as exc:
            raise CommandError(f"Training refused: {exc}") from None
        rows = run.data.get("rows", {})
        self.stdout.write(
            f"Training run {run.pk} ({run.method}, from {run.start_from}): "
            f"{rows.get('train', 0)} train, {rows.get('validation', 0)} validation, "
            f"{rows.get('test', 0)} test rows from {run.data.get('schools', 0)} school(s)"
            + (
                f", {run.data['original_dataset_rows']} of them from the original dataset"
                if run.data.get("original_dataset_rows")
                else ""
            )
            + "."
        )
        if options["enqueue"]:
            self.stdout.write("Sent to the GPU worker; follow it on the training page.")
            return
        while True:
            run = self._execute(run)
            if run.state != TrainingRun.State.RUNNING:
                break
            self.stdout.write("Paused to let drafting through; resuming from the checkpoint.")
        if run.state == TrainingRun.State.FINISHED:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Candidate version {run.result_version.name} written to"
                    f" {run.result_version.adapter} (validation loss"
                    f" {run.progress.get('final_eval_loss')})."
                )
            )
        elif run.state == TrainingRun.State.CANCELLED:
            self.stdout.write("Training cancelled.")
        else:
            raise CommandError(f"Training failed: {run.error_message}")

    def _execute(self, run: TrainingRun) -> TrainingRun:
        def echo(report: dict) -> None:
            if report["eval_loss"] is not None:
                self.stdout.write(
                    f"  step {report['step']}/{report['total']}:"
                    f" validation loss {report['eval_loss']:.4f}"
                )
            else:
                self.stdout.write(
                    f"  step {report['step']}/{report['total']}: loss {report['loss']:.4f}"
                )

        # No requeue: this process resumes the run itself after a pause.
        return training_run_execute(
            run_id=run.pk, hostname="manage.py train_adapter", requeue=False, on_progress=echo
        )
