"""The generation backend interface, chosen by a setting like Django's email backends.

Pure module: the web process imports it to read a backend's interface and errors, never
torch. The in-memory backend is generation.backends.locmem; the real one lives in worker/
(worker.backends.transformers.TransformersBackend) and is imported by dotted path only when
get_backend() is called, in the worker process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

STATUS_LOADING = "loading"
STATUS_READY = "ready"
STATUS_FAILED = "failed"
# A backend that does not size its batches from its memory drafts this many prompts at once.
DEFAULT_BATCH_SIZE = 8

MODEL_LOAD_USER_MESSAGE = (
    "Le modèle n'a pas pu être chargé. Les appréciations ne peuvent pas être générées pour"
    " le moment : réessayez plus tard ou prévenez l'administrateur de la plateforme."
)
# A worker found no model on its machine (checked at start, and before each job): the teacher
# is told at once, not after a load that would time out.
MODEL_MISSING_USER_MESSAGE = (
    "Le modèle de langue n'est pas installé sur le serveur de calcul : les appréciations ne"
    " peuvent pas être générées pour le moment. Prévenez l'administrateur de votre"
    " établissement. Vos saisies et les brouillons déjà rédigés sont conservés."
)
# The worker drafts on an inference server (worker.backends.openai) that does not answer:
# down, overloaded or too slow, after the retries.
INFERENCE_SERVER_USER_MESSAGE = (
    "Le serveur d'inférence ne répond pas : les appréciations ne peuvent pas être générées pour"
    " le moment. Cliquez sur « Réessayer » dans quelques minutes ou prévenez l'administrateur"
    " de la plateforme. Vos saisies et les brouillons déjà rédigés sont conservés."
)


@dataclass(frozen=True)
class ModelAvailability:
    """Whether a backend's model is on this machine, found without loading it.

    missing: what is absent and where it was looked for, in English (logs, administrators).
    user_message: the French sentence a teacher sees when a job fails for it.
    """

    available: bool
    base_model: str = ""
    adapter: str = ""
    missing: tuple[str, ...] = ()
    seconds: float = 0.0
    user_message: str = MODEL_MISSING_USER_MESSAGE

    @property
    def detail(self) -> str:
        return "; ".join(self.missing)


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to answer; key is the caller's identifier, echoed in the result."""

    key: str
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class GenerationResult:
    key: str
    text: str
    prompt_tokens: int = 0
    new_tokens: int = 0


PHASE_PREFILL = "prefill"
PHASE_DECODE = "decode"


@dataclass(frozen=True)
class GenerationProgress:
    """Where one generate() call stands: `step` of at most `steps` units of work of the batch
    running now, `finished` of `rows` results of the call handed out so far.

    A unit is a decoding step (phase "decode"), or, where a backend reads a large batch's
    prompts a few rows at a time, one such chunk before them (phase "prefill"): steps is
    then the chunks plus the decoding steps.
    """

    step: int
    steps: int
    finished: int
    rows: int
    phase: str = PHASE_DECODE


# Called as each result is ready, and as generation advances (see BaseBackend.generate).
ResultCallback = Callable[[GenerationResult], None]
ProgressCallback = Callable[[GenerationProgress], None]


class ModelLoadError(Exception):
    """The model could not be loaded. str() is the English reason, for logs;
    user_message is the French sentence a teacher sees."""

    def __init__(self, reason: str, *, user_message: str = MODEL_LOAD_USER_MESSAGE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.user_message = user_message


class BaseBackend:
    """A model that turns chat messages into texts, a batch at a time.

    status is "loading" until the model is ready (a backend loads lazily, on its first
    generate() or an explicit load()), "ready" once loaded, "failed" after a failed load.
    """

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._status = STATUS_LOADING

    @property
    def status(self) -> str:
        return self._status

    def load(self) -> None:
        """Load the model now rather than on the first generate()."""

    def check_available(self) -> ModelAvailability:
        """Whether the model's files are on this machine: offline, in a few seconds at most,
        without loading the model (a worker calls it when it starts, and before a job).
        A backend with nothing to load from disk is always available."""
        return ModelAvailability(available=True)

    def batch_size(self, *, prompt_tokens: int, rows: int | None = None) -> int:
        """How many prompts of about `prompt_tokens` tokens one generate() call takes (the
        runner claims batches of this size unless APPRECIATION_BATCH_SIZE is set).

        rows: how many prompts the caller has (the class's drafts still to write), when
        known. A backend whose cost per student falls with the batch (a CPU, a GPU) answers
        up to `rows`, as memory allows: one pass for the whole class. Progress no longer
        depends on the batch: generate() reports each result as it is ready.
        """
        return DEFAULT_BATCH_SIZE

    def release(self) -> None:
        """Free the model's memory (another model version is about to be loaded): a later
        call loads it again. Nothing to free for a backend that loads nothing."""

    def model_info(self) -> dict[str, Any]:
        """Base and adapter ids, device, dtype, and whether it is the test model."""
        raise NotImplementedError

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        seed: int | None = None,
        on_result: ResultCallback | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[GenerationResult]:
        """A batch in, a batch out: one result per request, in the same order.

        on_result, when given, is called once per request with its result as soon as that
        text is final, possibly long before generate() returns (a row that ended early in a
        batch still decoding), in any order, on the calling thread; generate() still
        returns every result. on_progress is called as generation advances (every
        decoding step for a backend that decodes step by step, at least once per result
        otherwise), so a caller can show progress and renew its leases; a backend must call
        it at least every few seconds. An exception raised by either callback stops the
        generation and goes up to the caller (a cancelled job stops its batch this way).
        """
        raise NotImplementedError


_cache: dict[tuple[str, tuple[tuple[str, Any], ...]], BaseBackend] = {}
_cache_lock = threading.Lock()


def get_backend(path: str | None = None, **options: Any) -> BaseBackend:
    """The process's backend for path (default settings.APPRECIATION_BACKEND).

    Cached per process and per options: a model is loaded once and reused by every task.
    Options are passed to the backend's constructor and must be hashable.
    """
    from django.conf import settings
    from django.utils.module_loading import import_string

    dotted_path = path or settings.APPRECIATION_BACKEND
    key = (dotted_path, tuple(sorted(options.items())))
    with _cache_lock:
        backend = _cache.get(key)
        if backend is None:
            backend_class = import_string(dotted_path)
            if not (isinstance(backend_class, type) and issubclass(backend_class, BaseBackend)):
                raise TypeError(f"{dotted_path} is not a BaseBackend subclass.")
            backend = backend_class(**options)
            _cache[key] = backend
        return backend


def get_only_backend(path: str | None = None, **options: Any) -> BaseBackend:
    """get_backend(), and the only backend this process keeps: every other cached one (another
    model version, or the settings' default) is dropped from the cache and released first, so
    that a worker switching versions never holds two 3B models at once."""
    from django.conf import settings

    key = (path or settings.APPRECIATION_BACKEND, tuple(sorted(options.items())))
    with _cache_lock:
        others = [_cache.pop(other) for other in [k for k in _cache if k != key]]
    for backend in others:
        backend.release()
    return get_backend(path, **options)


def release_backends() -> None:
    """Release every backend this process holds and forget them (a training run or an
    evaluation is about to load models of its own: never two 3B models at once); the next
    job loads its model again."""
    with _cache_lock:
        backends = list(_cache.values())
        _cache.clear()
    for backend in backends:
        backend.release()


def reset_backend_cache() -> None:
    """Forget every cached backend (tests; a worker that must reload its model)."""
    with _cache_lock:
        _cache.clear()
