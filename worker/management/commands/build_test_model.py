"""Build the tiny random test model: the platform runs end to end without the 6.5 GB model."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = (
        "Build a tiny random Llama and LoRA adapter in DIR (no network). Its texts are noise:"
        " it exercises the pipeline, not the wording."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path, help="Folder to write base/ and adapter/ to.")

    def handle(self, *args, directory: Path, **options) -> None:
        # torch is imported here, not at module level: listing commands must stay light.
        from worker.testing import build_test_model

        base, adapter = build_test_model(directory.resolve())
        self.stdout.write(f"Base model: {base}")
        self.stdout.write(f"Adapter:    {adapter}")
        self.stdout.write("Use it with these environment variables:")
        self.stdout.write(f"APPRECIATION_BASE_MODEL={base}")
        self.stdout.write(f"APPRECIATION_ADAPTER={adapter}")
        self.stdout.write("APPRECIATION_TEST_MODEL=1")
