"""The real backend: Llama 3.2 3B Instruct with the appreciation LoRA merged, via transformers.

Loaded lazily, once per process (the Celery GPU worker runs --pool=solo: one process, one
model). The adapter is merged into the base weights, so a forward pass costs what the base
model's does. Prompts are rendered with the model's chat template and a pinned date, batched
with left padding, and sampled with the model card's settings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from generation.backends import (
    STATUS_FAILED,
    STATUS_LOADING,
    STATUS_READY,
    BaseBackend,
    GenerationRequest,
    GenerationResult,
    ModelLoadError,
)
from generation.prompts import CHAT_TEMPLATE_DATE

logger = logging.getLogger(__name__)

# Llama 3 has no pad token; this reserved one is never trained on.
PAD_TOKEN = "<|finetune_right_pad_id|>"  # noqa: S105 - a token, not a password
CPU_BATCH_SIZE = 8
# A class fits in one batch; more gains nothing and a huge batch risks a long OOM retry chain.
MAX_AUTO_BATCH_SIZE = 64
# Room for activations and the allocator's fragmentation on top of the KV cache.
KV_CACHE_OVERHEAD = 1.5
FREE_MEMORY_SHARE = 0.8
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class TransformersBackend(BaseBackend):
    """Keyword options override the APPRECIATION_* settings (tests, benchmarks)."""

    def __init__(
        self,
        *,
        base_model: str | None = None,
        adapter: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int | None = None,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        min_p: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        test_model: bool | None = None,
    ) -> None:
        super().__init__()
        self.base_model = _setting("APPRECIATION_BASE_MODEL", base_model)
        self.adapter = _setting("APPRECIATION_ADAPTER", adapter)
        self.device_setting = _setting("APPRECIATION_DEVICE", device)
        self.dtype_setting = _setting("APPRECIATION_DTYPE", dtype)
        self.batch_size_setting = int(_setting("APPRECIATION_BATCH_SIZE", batch_size))
        self.max_new_tokens = int(_setting("APPRECIATION_MAX_NEW_TOKENS", max_new_tokens))
        self.temperature = float(_setting("APPRECIATION_TEMPERATURE", temperature))
        self.min_p = float(_setting("APPRECIATION_MIN_P", min_p))
        self.top_k = int(_setting("APPRECIATION_TOP_K", top_k))
        self.top_p = float(_setting("APPRECIATION_TOP_P", top_p))
        self.test_model = bool(_setting("APPRECIATION_TEST_MODEL", test_model))
        self.device: torch.device | None = None
        self.dtype: torch.dtype | None = None
        self.model: Any = None
        self.tokenizer: Any = None
        self.load_seconds: float | None = None
        self.failure_reason: str | None = None
        # Lowered when a batch runs out of GPU memory, so later calls start from a size that fits.
        self._oom_batch_cap: int | None = None
        self._lock = threading.RLock()

    # --- loading ---

    def load(self) -> None:
        """Load, merge and move the model; a no-op once ready. A failed load is retried on
        the next call (the cause may be gone: a full GPU, a download in progress)."""
        with self._lock:
            if self._status == STATUS_READY:
                return
            self._status = STATUS_LOADING
            started = time.monotonic()
            logger.info("Loading base model %s with adapter %s", self.base_model, self.adapter)
            try:
                self._load()
            except Exception as exc:
                self._status = STATUS_FAILED
                self.model = None
                # Name what was loaded: the library's message does not always say it.
                self.failure_reason = (
                    f"{type(exc).__name__} while loading {self.base_model}"
                    f" with adapter {self.adapter}: {exc}"
                )
                logger.exception("Model load failed: %s", self.failure_reason)
                if self.device is not None and self.device.type == "cuda":
                    torch.cuda.empty_cache()
                raise ModelLoadError(self.failure_reason) from exc
            self.load_seconds = time.monotonic() - started
            self.failure_reason = None
            self._status = STATUS_READY
            logger.info(
                "Model ready on %s (%s) in %.1f s", self.device, self.dtype, self.load_seconds
            )

    def _load(self) -> None:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        for name in (self.base_model, self.adapter):
            if _looks_like_path(name) and not Path(name).is_dir():
                raise FileNotFoundError(f"No model folder at {name}")
        self.device = resolve_device(self.device_setting)
        self.dtype = resolve_dtype(self.dtype_setting, self.device)
        self.tokenizer = self._load_tokenizer()
        base = AutoModelForCausalLM.from_pretrained(self.base_model, dtype=self.dtype)
        # Merged, the adapter costs nothing per token; unmerged (the card's load_adapter),
        # every projection runs twice more small matmuls.
        model = PeftModel.from_pretrained(base, self.adapter).merge_and_unload()
        model.to(self.device)
        model.eval()
        self.model = model

    def _load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        # The adapter ships the tokenizer it was trained with; a bare adapter folder does not.
        sources = [self.adapter, self.base_model]
        if _looks_like_path(self.adapter) and not _has_tokenizer(Path(self.adapter)):
            sources = [self.base_model]
        tokenizer = None
        for index, source in enumerate(sources):
            try:
                tokenizer = AutoTokenizer.from_pretrained(source)
                break
            except (OSError, ValueError):
                if index == len(sources) - 1:
                    raise
                logger.info("No tokenizer in %s, using the base model's", source)
        if PAD_TOKEN in tokenizer.get_vocab():
            tokenizer.pad_token = PAD_TOKEN
        elif tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        # Decoder-only generation continues from the last position: pad on the left.
        tokenizer.padding_side = "left"
        return tokenizer

    # --- generation ---

    def model_info(self) -> dict[str, Any]:
        return {
            "backend": f"{type(self).__module__}.{type(self).__qualname__}",
            "base_model": self.base_model,
            "adapter": self.adapter,
            "merged": True,
            "device": str(self.device) if self.device else self.device_setting,
            "dtype": str(self.dtype).removeprefix("torch.") if self.dtype else self.dtype_setting,
            "test_model": self.test_model,
            "status": self.status,
            "failure_reason": self.failure_reason,
        }

    def render_prompt(self, messages: list[dict[str, str]]) -> str:
        """The prompt text the model reads, date pinned so it does not change daily."""
        self.load()
        return self.tokenizer.apply_chat_template(
            messages,
            add_generation_prompt=True,
            date_string=CHAT_TEMPLATE_DATE,
            tokenize=False,
        )

    def generate(
        self, requests: Sequence[GenerationRequest], *, seed: int | None = None
    ) -> list[GenerationResult]:
        if not requests:
            return []
        with self._lock:
            self.load()
            prompts = [self.render_prompt(request.messages) for request in requests]
            lengths = [len(self.tokenizer(p, add_special_tokens=False).input_ids) for p in prompts]
            # Similar lengths side by side: less padding to compute in each batch.
            order = sorted(range(len(requests)), key=lambda index: lengths[index])
            outputs: dict[int, tuple[str, int, int]] = {}
            started = time.monotonic()
            with torch.random.fork_rng(devices=self._rng_devices(), enabled=seed is not None):
                if seed is not None:
                    torch.manual_seed(seed)
                batch_size = self.batch_size(prompt_tokens=max(lengths))
                position = 0
                while position < len(order):
                    chunk = order[position : position + batch_size]
                    try:
                        texts = self._generate_batch([prompts[index] for index in chunk])
                    except torch.cuda.OutOfMemoryError:
                        if torch.cuda.is_available():
                            torch.cuda.empty_cache()
                        if batch_size == 1:
                            logger.error("Out of GPU memory with a batch of 1")
                            raise
                        batch_size = max(1, batch_size // 2)
                        self._oom_batch_cap = batch_size
                        logger.warning("Out of GPU memory: retrying with batches of %d", batch_size)
                        continue
                    outputs.update(zip(chunk, texts, strict=True))
                    position += len(chunk)
            logger.info(
                "Generated %d texts in %.1f s (batch size %d)",
                len(requests),
                time.monotonic() - started,
                batch_size,
            )
            return [
                GenerationResult(
                    key=request.key,
                    text=outputs[index][0],
                    prompt_tokens=outputs[index][1],
                    new_tokens=outputs[index][2],
                )
                for index, request in enumerate(requests)
            ]

    def batch_size(self, *, prompt_tokens: int) -> int:
        """The configured size, or on CUDA as many sequences as the free memory holds."""
        if self.batch_size_setting > 0:
            size = self.batch_size_setting
        elif self.device is not None and self.device.type == "cuda":
            free_bytes, _total = torch.cuda.mem_get_info(self.device)
            per_sequence = (
                (prompt_tokens + self.max_new_tokens)
                * kv_cache_bytes_per_token(self.model.config, self.dtype)
                * KV_CACHE_OVERHEAD
            )
            size = int(free_bytes * FREE_MEMORY_SHARE // per_sequence)
            size = max(1, min(MAX_AUTO_BATCH_SIZE, size))
        else:
            size = CPU_BATCH_SIZE
        if self._oom_batch_cap is not None:
            size = min(size, self._oom_batch_cap)
        return size

    def _generate_batch(self, prompts: list[str]) -> list[tuple[str, int, int]]:
        """One padded batch through model.generate: (text, prompt tokens, new tokens) each."""
        # The chat template already wrote <|begin_of_text|>: no second one.
        encoded = self.tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)
        with torch.inference_mode():
            output = self.model.generate(
                **encoded,
                do_sample=True,
                max_new_tokens=self.max_new_tokens,
                temperature=self.temperature,
                min_p=self.min_p,
                # Explicit, or generation_config.json (top_p 0.9) and the library default
                # (top_k 50) would narrow the distribution the card's settings describe.
                top_k=self.top_k,
                top_p=self.top_p,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = output[:, encoded["input_ids"].shape[1] :].cpu()
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        prompt_counts = encoded["attention_mask"].sum(dim=1).tolist()
        stop_ids = set(_as_list(self.model.generation_config.eos_token_id))
        stop_ids.add(self.tokenizer.pad_token_id)
        return [
            (text, int(prompt_count), _count_new_tokens(row.tolist(), stop_ids))
            for text, prompt_count, row in zip(texts, prompt_counts, new_tokens, strict=True)
        ]

    def _rng_devices(self) -> list[int]:
        if self.device is not None and self.device.type == "cuda":
            return [self.device.index or 0]
        return []


def resolve_device(setting: str) -> torch.device:
    if setting in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"APPRECIATION_DEVICE is {setting} but CUDA is not available")
    return device


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    """Never float16 on a CPU (up to 8x slower, see facts.md). Automatic choice:
    on CUDA bfloat16 where the GPU supports it, else float16; on a CPU bfloat16 where the CPU
    computes it natively (AVX-512 BF16 / AMX), else float32 — measured on this project's
    AVX2-only EPYC: a 3072x3072 matmul takes 0.46 s in float32 against 2.16 s in bfloat16,
    and the class benchmark runs 3.7x faster (bench/README.md)."""
    if setting in ("", "auto"):
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    if setting not in _DTYPES:
        raise ValueError(f"Unknown APPRECIATION_DTYPE {setting!r}: use auto, {', '.join(_DTYPES)}")
    if device.type == "cpu" and setting == "float16":
        logger.warning("float16 is very slow on CPU: using bfloat16 instead")
        return torch.bfloat16
    return _DTYPES[setting]


def cpu_has_native_bf16() -> bool:
    """True where the CPU multiplies bfloat16 natively (else torch emulates it, slowly)."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # private helpers: absent in some builds
        return False


def kv_cache_bytes_per_token(config: Any, dtype: torch.dtype) -> int:
    """Keys and values of every layer for one token: about 115 KB for Llama 3.2 3B in bf16."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    element = torch.finfo(dtype).bits // 8
    return 2 * config.num_hidden_layers * kv_heads * head_dim * element


def _count_new_tokens(row: list[int], stop_ids: set[int]) -> int:
    # generate() pads finished rows; the stop token itself was generated and counts.
    for index, token in enumerate(row):
        if token in stop_ids:
            return index + 1
    return len(row)


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _looks_like_path(name: str) -> bool:
    # A hub id is "owner/name"; anything absolute, relative-looking or existing is a folder.
    return name.startswith(("/", ".", "~")) or Path(name).exists() or name.count("/") != 1


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file()


def _setting(name: str, override: Any) -> Any:
    if override is not None:
        return override
    from django.conf import settings

    return getattr(settings, name)
