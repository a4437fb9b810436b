"""Draft appréciations from the command line, or show the exact prompt the model gets.

--show-prompt needs no model: it prints the messages and never imports torch.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.scales import AVERAGE_MAX, RATING_MAX
from generation.prompts import PromptInputs, build_messages

DEFAULT_SUBJECT = "Histoire-Géographie"


def _number(text: str) -> Decimal:
    try:
        value = Decimal(text.replace(",", "."))  # "12,5" as a French teacher types it
    except InvalidOperation as exc:
        raise CommandError(f"Not a number: {text!r}") from exc
    if not value.is_finite():
        raise CommandError(f"Not a number: {text!r}")
    return value


class Command(BaseCommand):
    help = "Draft appréciations for one student profile (or show the prompt with --show-prompt)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--trimester", type=int, choices=(1, 2, 3), required=True)
        parser.add_argument(
            "--averages",
            nargs="+",
            required=True,
            metavar="AVERAGE",
            help="Averages out of 20 from the first trimester on: 1 for T1, 2 for T2, 3 for T3.",
        )
        parser.add_argument("--behaviour", required=True, help="Behaviour, 0 to 10.")
        parser.add_argument("--participation", required=True, help="Participation, 0 to 10.")
        parser.add_argument("--work", required=True, help="Personal work, 0 to 10.")
        parser.add_argument("--subject", default=DEFAULT_SUBJECT)
        parser.add_argument("-n", "--count", type=int, default=1, help="How many drafts.")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--max-chars", type=int, default=None)
        parser.add_argument(
            "--typographic-spaces",
            choices=("none", "narrow", "nbsp"),
            default="none",
            help="The school's space before ; : ! ? (set in the drafts, checked by Grammalecte).",
        )
        parser.add_argument(
            "--show-prompt", action="store_true", help="Print the messages as JSON and stop."
        )
        parser.add_argument(
            "--model-version",
            metavar="NAME",
            help="Draft with this model version (a candidate, to try it before promoting it);"
            " default: the version in service, else the model the settings name.",
        )

    def handle(self, *args, **options) -> None:
        inputs = self._inputs(options)
        try:
            messages = build_messages(inputs)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["show_prompt"]:
            self.stdout.write(json.dumps(messages, ensure_ascii=False, indent=2))
            return
        if options["count"] < 1:
            raise CommandError("-n must be at least 1.")
        self._draft(messages, options)

    def _inputs(self, options: dict) -> PromptInputs:
        trimester = options["trimester"]
        averages = [_number(text) for text in options["averages"]]
        if len(averages) != trimester:
            raise CommandError(
                f"Trimester {trimester} needs {trimester} average(s) (T1 to T{trimester}),"
                f" got {len(averages)}."
            )
        for term, average in enumerate(averages, start=1):
            if not 0 <= average <= AVERAGE_MAX:
                raise CommandError(f"The T{term} average must be between 0 and {AVERAGE_MAX}.")
        ratings = {}
        for name in ("behaviour", "participation", "work"):
            value = _number(options[name])
            if not 0 <= value <= RATING_MAX:
                raise CommandError(f"--{name} must be between 0 and {RATING_MAX}.")
            ratings[name] = value
        padded = (*averages, None, None)[:3]
        return PromptInputs(
            subject_name=options["subject"], trimester=trimester, averages=padded, **ratings
        )

    def _draft(self, messages: list[dict[str, str]], options: dict) -> None:
        from generation.backends import ModelLoadError
        from generation.drafting import DraftItem, draft_with_checks

        seed = options["seed"] if options["seed"] is not None else settings.APPRECIATION_SEED
        backend = self._backend(options["model_version"])
        items = [
            DraftItem(
                key=str(number),
                messages=messages,
                max_chars=options["max_chars"],
                typographic_spaces=options["typographic_spaces"],
            )
            for number in range(1, options["count"] + 1)
        ]
        try:
            outcomes = draft_with_checks(
                backend=backend,
                items=items,
                max_attempts=settings.APPRECIATION_MAX_ATTEMPTS,
                seed=seed,
            )
        except ModelLoadError as exc:
            raise CommandError(f"{exc.user_message} ({exc})") from exc
        info = backend.model_info()
        if info.get("test_model"):
            self.stderr.write("Test model: random weights, the texts are noise.")
        for outcome in outcomes:
            self.stdout.write(f"{outcome.key}. {outcome.text}")
            self.stdout.write(f"   ({outcome.attempts} attempt(s))")
            for flag in outcome.flags:
                self.stdout.write(f"   ⚠ {flag.code}: {flag.message}")

    def _backend(self, name: str | None):
        """The named version's backend, or the version in service's; the settings' model on a
        database that has no version yet (read only: a trial writes nothing)."""
        from generation.backends import get_backend
        from generation.models import ModelVersion
        from generation.services.versions import model_version_backend

        if name:
            version = ModelVersion.objects.filter(name=name).first()
            if version is None:
                known = ", ".join(ModelVersion.objects.values_list("name", flat=True)) or "none"
                raise CommandError(f"No model version named {name!r} (known: {known}).")
        else:
            version = ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).first()
        if version is None:
            return get_backend()
        self.stderr.write(f"Model version {version.name} ({version.state}): {version.adapter}")
        return model_version_backend(version=version)
