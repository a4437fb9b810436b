"""The real backend: Llama 3.2 3B Instruct with the appreciation LoRA merged, via transformers.

Loaded lazily, once per process (the Celery GPU worker runs --pool=solo: one process, one
model). The adapter is merged into the base weights, so a forward pass costs what the base
model's does. Prompts are rendered with the model's chat template and a pinned date, batched
with left padding, and sampled with the model card's settings.

The system turn is the same for every student of a class and most of each prompt; prefill is
compute-bound, so its keys and values are computed once and shared by every row of every
batch (`APPRECIATION_PREFIX_CACHE`), with the padding placed after it.

A whole class is one batch where memory allows, on a CPU as on a GPU: a decoding step reads
every weight whatever the batch, so 35 rows cost about two batches of 8 (bench/README.md).
Progress does not wait for the batch: every decoding step is reported (on_progress), and each
row is handed out (on_result) at the step it writes its end of turn.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from generation.backends import (
    PHASE_DECODE,
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
)
from worker.backends.quantize import QUANTIZE_KINDS, quantize_model
from worker.model_files import check_model_files, looks_like_path

logger = logging.getLogger(__name__)

# Llama 3 has no pad token; this reserved one is never trained on.
PAD_TOKEN = "<|finetune_right_pad_id|>"  # noqa: S105 - a token, not a password
END_OF_TURN = "<|eot_id|>"
# A class fits in one batch; more gains nothing and a huge batch risks a long OOM retry chain.
MAX_AUTO_BATCH_SIZE = 64
# Room for activations and the allocator's fragmentation on top of the KV cache.
KV_CACHE_OVERHEAD = 1.5
FREE_MEMORY_SHARE = 0.8
# A CPU server's memory is shared with the rest of the machine (the web app, other workers):
# a batch takes at most this share of what is available.
CPU_FREE_MEMORY_SHARE = 0.5
# On a CPU a large batch reads its prompts this many rows at a time (a class of 35 takes tens
# of seconds), so that progress moves during the prefill too; a GPU reads them at once.
PREFILL_CHUNK_ROWS = 8
# A shared prefix shorter than this is not worth a separate forward pass.
PREFIX_CACHE_MIN_TOKENS = 16
# The system prompt varies by subject only: a few entries cover a worker's recent jobs.
PREFIX_CACHE_ENTRIES = 8
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
        prefix_cache: bool | None = None,
        chat_date: str | None = None,
        quantize: str | None = None,
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
        self.prefix_cache = bool(_setting("APPRECIATION_PREFIX_CACHE", prefix_cache))
        self.chat_date = str(_setting("APPRECIATION_CHAT_DATE", chat_date))
        self.quantize = str(_setting("APPRECIATION_QUANTIZE", quantize) or "")
        if self.quantize not in QUANTIZE_KINDS:
            raise ValueError(f"Unknown APPRECIATION_QUANTIZE {self.quantize!r}: use '' or 'int8'")
        self.device: torch.device | None = None
        self.dtype: torch.dtype | None = None
        self.model: Any = None
        self.tokenizer: Any = None
        self.load_seconds: float | None = None
        self.failure_reason: str | None = None
        # Lowered when a batch runs out of GPU memory, so later calls start from a size that fits.
        self._oom_batch_cap: int | None = None
        # Keys and values of shared prompt prefixes (the system prompt), computed once:
        # token ids -> one (keys, values) pair per layer, batch of one.
        self._prefixes: OrderedDict[tuple[int, ...], list[tuple[Any, Any]]] = OrderedDict()
        self.prefix_stats = {"computed": 0, "reused": 0, "tokens_saved": 0}
        self._lock = threading.RLock()

    # --- loading ---

    def check_available(self) -> ModelAvailability:
        """The base model and the adapter in local folders or the Hugging Face cache: a few
        small files read, nothing loaded, nothing downloaded."""
        return check_model_files(base_model=self.base_model, adapter=self.adapter)

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

    def release(self) -> None:
        """Drop the model and its cached prefixes (the worker moves to another version); the
        next generate() or load() loads it again."""
        with self._lock:
            self.model = None
            self.tokenizer = None
            self._prefixes.clear()
            self._status = STATUS_LOADING
            device = self.device
        gc.collect()
        if device is not None and device.type == "cuda":
            torch.cuda.empty_cache()
        logger.info("Released %s with adapter %s", self.base_model, self.adapter)

    def _load(self) -> None:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        for name in (self.base_model, self.adapter):
            if looks_like_path(name) and not Path(name).is_dir():
                raise FileNotFoundError(f"No model folder at {name}")
        self._prefixes.clear()
        self.device = resolve_device(self.device_setting)
        self.dtype = resolve_dtype(self.dtype_setting, self.device)
        if self.quantize:
            if self.device.type != "cpu":
                raise ValueError("APPRECIATION_QUANTIZE=int8 is for CPUs (fbgemm kernels)")
            # int8 weights with int8 activations (torch.ao's dynamic quantization) take
            # float32 in and out: the rest of the model (norms, attention) runs in float32.
            self.dtype = torch.float32
        self.tokenizer = self._load_tokenizer()
        base = AutoModelForCausalLM.from_pretrained(self.base_model, dtype=self.dtype)
        # Merged, the adapter costs nothing per token; unmerged (the card's load_adapter),
        # every projection runs twice more small matmuls.
        model = PeftModel.from_pretrained(base, self.adapter).merge_and_unload()
        model.to(self.device)
        model.eval()
        if self.quantize:
            replaced = quantize_model(model, self.quantize)
            logger.info("Quantized %d linear layers to %s", replaced, self.quantize)
            # The float32 weights are freed but glibc keeps their pages: give them back, or
            # MemAvailable (and the automatic CPU batch) stays 10 GB lower.
            _release_freed_memory()
        model.get_output_embeddings().register_forward_pre_hook(_contiguous_input)
        self.model = model

    def _load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        # The adapter ships the tokenizer it was trained with; a bare adapter folder does not.
        sources = [self.adapter, self.base_model]
        if looks_like_path(self.adapter) and not _has_tokenizer(Path(self.adapter)):
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
            "prefix_cache": self.prefix_cache,
            "chat_date": self.chat_date,
            "device": str(self.device) if self.device else self.device_setting,
            "dtype": str(self.dtype).removeprefix("torch.") if self.dtype else self.dtype_setting,
            "quantize": self.quantize,
            "test_model": self.test_model,
            "status": self.status,
            "failure_reason": self.failure_reason,
        }

    def render_prompt(self, messages: list[dict[str, str]]) -> str:
        """The prompt text the model reads, date pinned so it does not change daily."""
        self.load()
        return render_prompt_text(self.tokenizer, messages, date_string=self.chat_date)

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        seed: int | None = None,
        on_result: ResultCallback | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[GenerationResult]:
        if not requests:
            return []
        with self._lock:
            self.load()
            # The chat template already wrote <|begin_of_text|>: no second one.
            rows = [
                prompt_token_ids(self.tokenizer, request.messages, date_string=self.chat_date)
                for request in requests
            ]
            lengths = [len(row) for row in rows]
            # Similar lengths side by side: less padding to compute in each batch.
            order = sorted(range(len(requests)), key=lambda index: lengths[index])
            outputs: dict[int, GenerationResult] = {}

            def handed_out(index: int, text: str, prompt: int, new: int) -> None:
                result = GenerationResult(
                    key=requests[index].key, text=text, prompt_tokens=prompt, new_tokens=new
                )
                outputs[index] = result
                if on_result is not None:
                    on_result(result)

            def progress(step: int, steps: int, phase: str) -> None:
                if on_progress is not None:
                    on_progress(
                        GenerationProgress(
                            step=step,
                            steps=steps,
                            finished=len(outputs),
                            rows=len(requests),
                            phase=phase,
                        )
                    )

            started = time.monotonic()
            with torch.random.fork_rng(devices=self._rng_devices(), enabled=seed is not None):
                if seed is not None:
                    torch.manual_seed(seed)
                batch_size = self.batch_size(prompt_tokens=max(lengths), rows=len(requests))
                position = 0
                while position < len(order):
                    chunk = order[position : position + batch_size]
                    try:
                        self._generate_batch(
                            [rows[index] for index in chunk],
                            on_row=lambda row, *result, chunk=chunk: handed_out(
                                chunk[row], *result
                            ),
                            on_step=progress,
                        )
                    except torch.cuda.OutOfMemoryError:
                        self._prefixes.clear()
                        if torch.cuda.is_available():
                            torch.cuda.empty_cache()
                        if batch_size == 1 or any(index in outputs for index in chunk):
                            # A row already handed out cannot be taken back: no retry.
                            logger.error("Out of GPU memory with a batch of %d", len(chunk))
                            raise
                        batch_size = max(1, batch_size // 2)
                        self._oom_batch_cap = batch_size
                        logger.warning("Out of GPU memory: retrying with batches of %d", batch_size)
                        continue
                    position += len(chunk)
            logger.info(
                "Generated %d texts in %.1f s (batch size %d; prefix cache: %s)",
                len(requests),
                time.monotonic() - started,
                batch_size,
                self.prefix_stats if self.prefix_cache else "off",
            )
            return [outputs[index] for index in range(len(requests))]

    def batch_size(self, *, prompt_tokens: int, rows: int | None = None) -> int:
        """The configured size, or as many sequences as the free memory holds, up to `rows`
        (the whole class): on CUDA from the GPU's free memory, on a CPU from the memory
        the system has available (a decoding step costs little more for 35 rows than for 8)."""
        if self.batch_size_setting > 0:
            size = self.batch_size_setting
        else:
            per_sequence = (
                (prompt_tokens + self.max_new_tokens)
                * kv_cache_bytes_per_token(self.model.config, self.dtype or torch.float32)
                * KV_CACHE_OVERHEAD
            )
            if self.device is not None and self.device.type == "cuda":
                free_bytes, _total = torch.cuda.mem_get_info(self.device)
                room = free_bytes * FREE_MEMORY_SHARE
            else:
                room = available_memory_bytes() * CPU_FREE_MEMORY_SHARE
            size = int(room // per_sequence)
            size = max(1, min(MAX_AUTO_BATCH_SIZE, rows or MAX_AUTO_BATCH_SIZE, size))
        if self._oom_batch_cap is not None:
            size = min(size, self._oom_batch_cap)
        return size

    def _generate_batch(
        self,
        rows: list[list[int]],
        *,
        on_row: Callable[..., None] | None = None,
        on_step: Callable[[int, int, str], None] | None = None,
    ) -> None:
        """One padded batch of tokenized prompts through model.generate.

        on_row(row, text, prompt tokens, new tokens) is called once per row: at the step the
        row writes its end of turn, or when the batch ends. on_step(step, steps, phase) after
        every chunk of prompts read (a large batch on a CPU) and every decoding step.
        """
        from transformers import StoppingCriteriaList

        prefix = self._shared_prefix(rows) if self.prefix_cache else ()
        input_ids, attention_mask = self._pad(rows, prefix_length=len(prefix))
        cache_kwargs = {}
        if prefix:
            cache_kwargs["cache"] = self._prefix_cache_for_batch(prefix, batch=len(rows))
        chunks = 0
        if self.device is not None and self.device.type == "cpu":
            chunks = -(-len(rows) // PREFILL_CHUNK_ROWS) if len(rows) > PREFILL_CHUNK_ROWS else 0
        if chunks:
            cache_kwargs["cache"] = self._prefill_in_chunks(
                input_ids,
                attention_mask,
                cache=cache_kwargs.get("cache"),
                start=len(prefix),
                on_chunk=None
                if on_step is None
                else lambda chunk: on_step(chunk, chunks + self.max_new_tokens, "prefill"),
            )
        stop_ids = set(_as_list(self.model.generation_config.eos_token_id))
        stop_ids.add(self.tokenizer.pad_token_id)
        watcher = _RowWatcher(
            prompt_width=input_ids.shape[1],
            steps=self.max_new_tokens,
            offset=chunks,
            stop_ids=stop_ids,
            finish=lambda row, tokens: self._hand_out(rows, row, tokens, stop_ids, on_row),
            on_step=on_step,
        )
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                do_sample=True,
                max_new_tokens=self.max_new_tokens,
                temperature=self.temperature,
                min_p=self.min_p,
                # Explicit, or generation_config.json (top_p 0.9) and the library default
                # (top_k 50) would narrow the distribution the card's settings describe.
                top_k=self.top_k,
                top_p=self.top_p,
                pad_token_id=self.tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([watcher]),
                **cache_kwargs,
            )
        new_tokens = output[:, input_ids.shape[1] :].cpu()
        # Rows that ran to max_new_tokens (or ended at the very last step).
        for row in range(len(rows)):
            if row not in watcher.finished:
                watcher.finished.add(row)
                self._hand_out(rows, row, new_tokens[row].tolist(), stop_ids, on_row)

    def _prefill_in_chunks(
        self,
        input_ids: Any,
        attention_mask: Any,
        *,
        cache: Any,
        start: int,
        on_chunk: Callable[[int], None] | None,
    ) -> Any:
        """Read every prompt but its last token, PREFILL_CHUNK_ROWS rows at a time; returns
        the batch's cache. generate() then reads the last tokens itself (its first step).

        The same computation as generate()'s own prefill: positions counted on the attention
        mask, the shared prefix's cached keys and values (from `cache`) before each row.
        """
        from transformers import DynamicCache

        batch, width = input_ids.shape
        end = width - 1
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        parts: list[list[tuple[Any, Any]]] = []
        with torch.inference_mode():
            for number, first in enumerate(range(0, batch, PREFILL_CHUNK_ROWS), start=1):
                rows = slice(first, first + PREFILL_CHUNK_ROWS)
                chunk_cache = (
                    DynamicCache([(keys[rows], values[rows]) for keys, values, *_ in cache])
                    if cache is not None
                    else DynamicCache()
                )
                if end > start:
                    self.model(
                        input_ids=input_ids[rows, start:end],
                        attention_mask=attention_mask[rows, :end],
                        position_ids=positions[rows, start:end],
                        cache=chunk_cache,
                        use_cache=True,
                        logits_to_keep=1,
                    )
                parts.append([(keys, values) for keys, values, *_ in chunk_cache])
                if on_chunk is not None:
                    on_chunk(number)
            return DynamicCache(
                [
                    (
                        torch.cat([part[layer][0] for part in parts]),
                        torch.cat([part[layer][1] for part in parts]),
                    )
                    for layer in range(len(parts[0]))
                ]
            )

    def _hand_out(self, rows, row, tokens, stop_ids, on_row) -> None:
        if on_row is None:
            return
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        on_row(row, text, len(rows[row]), _count_new_tokens(tokens, stop_ids))

    def _pad(self, rows: list[list[int]], *, prefix_length: int) -> tuple[Any, Any]:
        """Left padding, or with a shared prefix, padding between the prefix and the rest.

        [prefix][pad...][rest]: the prefix's cached keys and values serve every row, and the
        positions, counted on the attention mask, are the same as without padding.
        """
        pad = self.tokenizer.pad_token_id
        rests = [row[prefix_length:] for row in rows]
        width = max(len(rest) for rest in rests)
        ids, mask = [], []
        for rest in rests:
            gap = width - len(rest)
            ids.append(list(rows[0][:prefix_length]) + [pad] * gap + rest)
            mask.append([1] * prefix_length + [0] * gap + [1] * len(rest))
        return (
            torch.tensor(ids, dtype=torch.long, device=self.device),
            torch.tensor(mask, dtype=torch.long, device=self.device),
        )

    def _shared_prefix(self, rows: list[list[int]]) -> tuple[int, ...]:
        """Token ids every row starts with and whose keys and values are worth caching.

        A prefix cached by an earlier batch serves any batch it starts, a batch of one too
        (a quick draft after a class). Otherwise the batch's longest common prefix, cut after
        its last end of turn: the system turn is the same for every student of a subject,
        what follows depends on the trimester and the grades, and a prefix that specific
        would not serve the next batch. Every row keeps at least one token of its own.
        """
        shortest = min(len(row) for row in rows)
        for prefix in reversed(self._prefixes):
            if len(prefix) < shortest and all(tuple(row[: len(prefix)]) == prefix for row in rows):
                return prefix
        if len(rows) < 2:
            return ()
        length = 0
        while length < shortest - 1 and all(row[length] == rows[0][length] for row in rows):
            length += 1
        common = rows[0][:length]
        end_of_turn = self.tokenizer.convert_tokens_to_ids(END_OF_TURN)
        if end_of_turn in common:
            length = len(common) - common[::-1].index(end_of_turn)
        return tuple(rows[0][:length]) if length >= PREFIX_CACHE_MIN_TOKENS else ()

    def _prefix_cache_for_batch(self, prefix: tuple[int, ...], *, batch: int) -> Any:
        """A fresh cache holding the prefix's keys and values for every row of the batch."""
        from transformers import DynamicCache

        layers = self._prefixes.get(prefix)
        if layers is None:
            with torch.inference_mode():
                output = self.model(
                    input_ids=torch.tensor([prefix], dtype=torch.long, device=self.device),
                    use_cache=True,
                    logits_to_keep=1,
                )
            layers = [(keys, values) for keys, values, *_ in output.cache]
            self._prefixes[prefix] = layers
            if len(self._prefixes) > PREFIX_CACHE_ENTRIES:
                self._prefixes.popitem(last=False)
            self.prefix_stats["computed"] += 1
            self.prefix_stats["tokens_saved"] -= len(prefix)
        else:
            self._prefixes.move_to_end(prefix)
            self.prefix_stats["reused"] += 1
        self.prefix_stats["tokens_saved"] += len(prefix) * batch
        # generate() appends to the cache it is given: each batch gets its own copy.
        with torch.inference_mode():
            return DynamicCache(
                [
                    (
                        keys.expand(batch, -1, -1, -1).clone(),
                        values.expand(batch, -1, -1, -1).clone(),
                    )
                    for keys, values in layers
                ]
            )

    def _rng_devices(self) -> list[int]:
        if self.device is not None and self.device.type == "cuda":
            return [self.device.index or 0]
        return []


def render_prompt_text(tokenizer: Any, messages: list[dict[str, str]], *, date_string: str) -> str:
    """The prompt as the model reads it: the chat template, the generation prompt, the date.

    The exported training set carries the same date (`chat_template_kwargs`), so TRL renders
    byte for byte what this sends.
    """
    return tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, date_string=date_string, tokenize=False
    )


def prompt_token_ids(
    tokenizer: Any, messages: list[dict[str, str]], *, date_string: str
) -> list[int]:
    """The token ids the model is given for one prompt."""
    # The chat template already wrote <|begin_of_text|>: no second one.
    return tokenizer(
        render_prompt_text(tokenizer, messages, date_string=date_string),
        add_special_tokens=False,
    ).input_ids


def resolve_device(setting: str) -> torch.device:
    if setting in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"APPRECIATION_DEVICE is {setting} but CUDA is not available")
    return device


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    """Never float16 on a CPU (up to 8x slower). Automatic choice:
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


def _release_freed_memory() -> None:
    import contextlib
    import ctypes
    import gc

    gc.collect()
    # Not glibc: nothing to give back this way.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def available_memory_bytes() -> int:
    """What the system can still give this process: MemAvailable (Linux), else the total."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class _RowWatcher:
    """A stopping criterion that stops nothing: called by generate() after every decoding
    step, it hands out each row at the step it writes a stop token (its text is final:
    generate() only pads it from then on) and reports the step (after `offset` units of
    prefill)."""

    def __init__(
        self,
        *,
        prompt_width: int,
        steps: int,
        offset: int,
        stop_ids: set[int],
        finish: Callable[[int, list[int]], None],
        on_step: Callable[[int, int, str], None] | None,
    ) -> None:
        self.prompt_width = prompt_width
        self.steps = steps
        self.offset = offset
        self.stop_ids = torch.tensor(sorted(stop_ids))
        self.finish = finish
        self.on_step = on_step
        self.finished: set[int] = set()

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_width
        last = input_ids[:, -1].cpu()
        ended = torch.isin(last, self.stop_ids).nonzero().flatten().tolist()
        fresh = [row for row in ended if row not in self.finished]
        if fresh:
            new_tokens = input_ids[fresh, self.prompt_width :].cpu()
            for row, tokens in zip(fresh, new_tokens, strict=True):
                self.finished.add(row)
                self.finish(row, tokens.tolist())
        if self.on_step is not None:
            self.on_step(self.offset + step, self.offset + self.steps, PHASE_DECODE)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def kv_cache_bytes_per_token(config: Any, dtype: torch.dtype) -> int:
    """Keys and values of every layer for one token: about 115 KB for Llama 3.2 3B in bf16."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    element = torch.finfo(dtype).bits // 8
    return 2 * config.num_hidden_layers * kv_heads * head_dim * element


def _contiguous_input(module: Any, args: tuple) -> tuple:
    """Hand the output layer a contiguous input.

    At prefill, generate() asks for the last position's logits only, and the model slices
    its hidden states to (batch, 1, hidden): a strided view. torch.matmul folds such an input
    into one matrix product only when the weight requires grad, which PEFT turns off when it
    freezes the base; otherwise it broadcasts the 128256-row output weight over the batch and
    copies it (6.3 GB for a batch of 8 in bf16: 21 of 28 seconds of a CPU prefill, measured
    in bench/README.md). Copying the few rows of hidden states instead costs nothing.
    """
    return (args[0].contiguous(), *args[1:])


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


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file()


def _setting(name: str, override: Any) -> Any:
    if override is not None:
        return override
    from django.conf import settings

    return getattr(settings, name)
