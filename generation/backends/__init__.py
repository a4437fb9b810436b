"""The generation backend interface, chosen by a setting like Django's email backends:
`base` declares the contract (and get_backend), `locmem` is the in-memory backend. The face
hands their names on, so that settings say `generation.backends.LocmemBackend`."""

from .base import (
    DEFAULT_BATCH_SIZE,
    INFERENCE_SERVER_USER_MESSAGE,
    MODEL_LOAD_USER_MESSAGE,
    MODEL_MISSING_USER_MESSAGE,
    PHASE_DECODE,
    PHASE_PREFILL,
    STATUS_FAILED,
    STATUS_LOADING,
    STATUS_READY,
    BaseBackend,
    GenerationProgress,
    GenerationRequest,
    GenerationResult,
    ModelAvailability,
    ModelLoadError,
    ProgressCallback,
    ResultCallback,
    get_backend,
    get_only_backend,
    release_backends,
    reset_backend_cache,
)
from .locmem import LocmemBackend

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "INFERENCE_SERVER_USER_MESSAGE",
    "MODEL_LOAD_USER_MESSAGE",
    "MODEL_MISSING_USER_MESSAGE",
    "PHASE_DECODE",
    "PHASE_PREFILL",
    "STATUS_FAILED",
    "STATUS_LOADING",
    "STATUS_READY",
    "BaseBackend",
    "GenerationProgress",
    "GenerationRequest",
    "GenerationResult",
    "LocmemBackend",
    "ModelAvailability",
    "ModelLoadError",
    "ProgressCallback",
    "ResultCallback",
    "get_backend",
    "get_only_backend",
    "release_backends",
    "reset_backend_cache",
]
