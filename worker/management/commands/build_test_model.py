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
        parser.add_argument(
            "--gguf",
            action="store_true",
            help="Also write the model, adapter merged, as DIR/tiny-appreciation-f32.gguf for an"
            " OpenAI-compatible llama.cpp server (the gguf package, `make install`).",
        )

    def handle(self, *args, directory: Path, gguf: bool = False, **options) -> None:
        # torch is imported here, not at module level: listing commands must stay light.
        from worker.testing import build_test_model

        base, adapter = build_test_model(directory.resolve())
        self.stdout.write(f"Base model: {base}")
        self.stdout.write(f"Adapter:    {adapter}")
        self.stdout.write("Use it with these environment variables:")
        self.stdout.write(f"APPRECIATION_BASE_MODEL={base}")
        self.stdout.write(f"APPRECIATION_ADAPTER={adapter}")
        self.stdout.write("APPRECIATION_TEST_MODEL=1")
        if gguf:
            from transformers import AutoTokenizer

            from worker.gguf_export import export_gguf, merged_model

            path = export_gguf(
                merged_model(base, adapter),
                AutoTokenizer.from_pretrained(adapter),
                directory.resolve() / "tiny-appreciation-f32.gguf",
            )
            self.stdout.write(f"GGUF:       {path}")
            self.stdout.write("Serve it, and draft on it, with:")
            self.stdout.write(
                f"python -m llama_cpp.server --model {path} --model_alias appreciation"
                " --host 127.0.0.1 --port 8080"
            )
            self.stdout.write(
                "APPRECIATION_BACKEND=worker.backends.openai.OpenAICompatibleBackend"
                " APPRECIATION_INFERENCE_SERVERS=http://127.0.0.1:8080/v1"
                " APPRECIATION_INFERENCE_ENGINE=llama-cpp-python"
            )
