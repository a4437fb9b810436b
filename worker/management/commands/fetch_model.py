"""Download the base model and the adapter into the Hugging Face cache (about 6.5 GB)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

# Weights, configs and tokenizer: not the duplicate original/*.pth checkpoints some repos carry.
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt"]


class Command(BaseCommand):
    help = (
        "Download APPRECIATION_BASE_MODEL and APPRECIATION_ADAPTER into the Hugging Face cache"
        " (about 6.5 GB), so the worker starts without network."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--revision", default=None, help="A branch, tag or commit (both repos)."
        )

    def handle(self, *args, revision: str | None, **options) -> None:
        for repo_id in (settings.APPRECIATION_BASE_MODEL, settings.APPRECIATION_ADAPTER):
            if Path(repo_id).expanduser().is_dir():
                self.stdout.write(f"{repo_id}: local folder, nothing to download.")
                continue
            self.stdout.write(f"Downloading {repo_id}…")
            path = self._download(repo_id, revision)
            self.stdout.write(self.style.SUCCESS(f"{repo_id} → {path}"))

    def _download(self, repo_id: str, revision: str | None) -> str:
        # Imported here: the hub client is only needed by this command.
        from huggingface_hub import snapshot_download

        try:
            return snapshot_download(
                repo_id=repo_id, revision=revision, allow_patterns=ALLOW_PATTERNS
            )
        except Exception as exc:  # offline, unknown repo, disk full: all end the command
            raise CommandError(
                f"Le téléchargement de {repo_id} a échoué : vérifiez la connexion au Hugging Face"
                f" Hub. / Download of {repo_id} failed ({type(exc).__name__}: {exc})."
            ) from exc
