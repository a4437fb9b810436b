"""The in-memory backend, like Django's locmem email backend: tests, benchmarks, the demo."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import (
    STATUS_READY,
    BaseBackend,
    GenerationProgress,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
    ResultCallback,
)

# Sentences that pass every check (French, impersonal, no grade, 1-40 words), so that a draft
# written by the local backend is a plausible one. A sequence number keeps every draft distinct.
_LOCMEM_SENTENCES = (
    "Trimestre sérieux et régulier ; la participation orale doit encore s'affirmer.",
    "Un travail appliqué qui porte ses fruits ; poursuivre les efforts à l'écrit.",
    "Des progrès nets ce trimestre ; l'attention en classe reste à consolider.",
    "Ensemble satisfaisant : une implication constante, des méthodes à approfondir.",
)


class LocmemBackend(BaseBackend):
    """A backend in memory, like Django's locmem email backend: no model, instant answers.

    Each answer is a valid French appréciation with a distinct ordinal word; `sent` keeps
    (key, text) of every answer in order, for tests, benchmarks and demos.
    """

    _ORDINALS = ("premier", "deuxième", "troisième", "quatrième", "cinquième", "sixième")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.sent: list[tuple[str, str]] = []

    def load(self) -> None:
        self._status = STATUS_READY

    def model_info(self) -> dict[str, Any]:
        # The version it stands for, when the runner names one (base_model, adapter options).
        return {
            "base_model": str(self.options.get("base_model", "locmem")),
            "adapter": str(self.options.get("adapter", "locmem")),
            "test_model": True,
        }

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        seed: int | None = None,
        on_result: ResultCallback | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[GenerationResult]:
        self._status = STATUS_READY
        results = []
        for index, request in enumerate(requests):
            n = len(self.sent)
            sentence = _LOCMEM_SENTENCES[n % len(_LOCMEM_SENTENCES)]
            ordinal = self._ORDINALS[(n // len(_LOCMEM_SENTENCES)) % len(self._ORDINALS)]
            text = f"{sentence[:-1]}, {ordinal} conseil."
            self.sent.append((request.key, text))
            result = GenerationResult(key=request.key, text=text)
            results.append(result)
            # One result per step, handed out as it comes, like a model's rows finishing.
            if on_progress is not None:
                on_progress(
                    GenerationProgress(
                        step=index + 1, steps=len(requests), finished=index, rows=len(requests)
                    )
                )
            if on_result is not None:
                on_result(result)
        return results
