"""manage.py evaluate_version <name> [--against <name>] [--seed N]: evaluate a version against
the active one (or another) here, now, and print the figures (in English, like the logs)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from classes.models import Teacher
from generation.models import ModelVersion
from learning import evaluation as services
from learning.evaluation_metrics import EVALUATED_CHECKS
from learning.models import ModelEvaluation


class Command(BaseCommand):
    help = "Evaluate a model version against the active one on the held-out test rows."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The version to evaluate (its name).")
        parser.add_argument("--against", help="The reference version (default: the active one).")
        parser.add_argument(
            "--seed", type=int, help="Sampling seed (APPRECIATION_EVALUATION_SEED)."
        )

    def handle(self, *args, **options):
        candidate = _version(options["name"])
        reference = _version(options["against"]) if options["against"] else None
        user = Teacher.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if user is None:
            raise CommandError("No active superuser: create one (manage.py createsuperuser).")
        try:
            evaluation = services.model_evaluation_create(
                user=user,
                candidate=candidate,
                reference=reference,
                seed=options["seed"],
                send=False,
            )
        except services.EvaluationError as error:
            raise CommandError(str(error)) from error
        services.model_evaluation_run(evaluation_id=evaluation.pk)
        evaluation.refresh_from_db()
        if evaluation.state != ModelEvaluation.State.FINISHED:
            raise CommandError(f"Evaluation {evaluation.pk} failed: {evaluation.error_message}")
        self.stdout.write(report(evaluation))


def _version(name: str) -> ModelVersion:
    try:
        return ModelVersion.objects.get(name=name)
    except ModelVersion.DoesNotExist:
        raise CommandError(f"No model version named {name!r}.") from None


def _number(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(evaluation: ModelEvaluation) -> str:
    metrics = evaluation.metrics
    c, r = metrics["candidate"], metrics["reference"]
    lines = [
        f"Evaluation {evaluation.pk}: {c['version']} against {r['version']} on"
        f" {metrics['rows']} test rows (seed {metrics['seed']})",
        f"{'':40} {c['version']:>12} {r['version']:>12}",
    ]

    def line(label: str, a, b, digits: int = 3) -> None:
        lines.append(f"{label:40} {_number(a, digits):>12} {_number(b, digits):>12}")

    line("Loss (nats per token)", c["loss"], r["loss"])
    line("Perplexity", c["perplexity"], r["perplexity"], 2)
    line("Drafts passing every check", c["checks"]["all"], r["checks"]["all"])
    for code in EVALUATED_CHECKS:
        line(f"  passing {code}", c["checks"][code], r["checks"][code])
    line("chrF to the teacher's text", c["chrf"], r["chrf"], 1)
    line("Normalised edit distance", c["edit_distance"], r["edit_distance"])
    line("Mean words", c["words"]["mean"], r["words"]["mean"], 1)
    line("Median words", c["words"]["median"], r["words"]["median"], 1)
    teachers = metrics["teachers"]["words"]
    lines.append(
        f"Teachers' texts: mean {teachers['mean']:.1f} words, median {teachers['median']:.1f}"
    )
    lines.append("Word counts (teachers / candidate / reference):")
    for t, a, b in zip(
        teachers["buckets"], c["words"]["buckets"], r["words"]["buckets"], strict=True
    ):
        lines.append(f"  {t['label']:>6}: {t['count']:>5} {a['count']:>5} {b['count']:>5}")
    gate = evaluation.gate
    failed = [item["name"] for item in gate["criteria"] if not item["passed"]]
    lines.append(
        "Promotion gate: passed"
        if gate["passed"]
        else f"Promotion gate: failed ({', '.join(failed)})"
    )
    return "\n".join(lines)
