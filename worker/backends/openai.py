"""A backend that drafts on OpenAI-compatible inference servers (vLLM, llama.cpp's server).

Schools and académies share GPU servers run by engines built for it (continuous batching,
prefix caching); the worker only renders prompts and sends them. No torch here: a worker in
front of a server needs neither the model nor a GPU.

- The prompt is the text the transformers backend gives its model, byte for byte: the same
  chat template (worker/llama32_chat_template.jinja) rendered as transformers renders it, with
  the same pinned date (APPRECIATION_CHAT_DATE). It goes to the completions endpoint (no chat
  template applied by the server) without its leading <|begin_of_text|>, which the server adds
  itself when it tokenizes a text prompt (Llama 3's add_bos_token): the token ids are those
  of the transformers backend (tests/worker/test_openai_backend.py asks the server).
- A class goes out at once, APPRECIATION_INFERENCE_CONCURRENCY requests in flight, spread
  over APPRECIATION_INFERENCE_SERVERS; the server batches them and its prefix cache shares
  the system turn.
- The model card's sampling (temperature 1.5 then min_p 0.1, nothing else) is pinned for
  each engine, whose samplers and defaults differ (see sampling_parameters()).
- A request that fails (server down, timeout, 429/5xx: overloaded) is sent again, to the next
  server, after 1, 2, 4… s (APPRECIATION_INFERENCE_BACKOFF), up to
  APPRECIATION_INFERENCE_RETRIES tries; then the batch fails with InferenceServerError, whose
  French user_message the teacher sees. Drafts already written stay; the others wait for
  « Réessayer ».
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from generation.backends import (
    INFERENCE_SERVER_USER_MESSAGE,
    STATUS_FAILED,
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

logger = logging.getLogger(__name__)

CHAT_TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "llama32_chat_template.jinja"
BOS_TEXT = "<|begin_of_text|>"
ENGINES = ("vllm", "llama.cpp", "llama-cpp-python")
# Checking a server (worker start, before a job) must take seconds, not a request's timeout.
CHECK_TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 30.0
# While a class waits on the servers, progress is reported at least this often (the runner
# shows it and the contract of BaseBackend.generate asks for it every few seconds).
PROGRESS_INTERVAL = 2.0
# Answers that say "try again": overloaded (429, 503), a proxy without its upstream (502, 504).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class InferenceServerError(ModelLoadError):
    """No inference server answered (down, overloaded, timing out) after the retries."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, user_message=INFERENCE_SERVER_USER_MESSAGE)


class _PermanentError(Exception):
    """An answer that no retry will change (a bad request: a setting is wrong)."""


@cache
def _compiled_template(source: str) -> Any:
    """The chat template compiled as transformers compiles it (apply_chat_template):
    trim_blocks, lstrip_blocks, loop controls, raise_exception, in a sandbox."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    environment.globals["raise_exception"] = raise_exception
    return environment.from_string(source)


def served_model_name(template: str, *, adapter: str) -> str:
    """The model name to ask the server for. "{adapter_name}" in APPRECIATION_INFERENCE_MODEL
    is the version's adapter folder (or hub id) last part, e.g. "v2": a server that holds every
    version as a LoRA (vLLM --lora-modules v2=/models/versions/v2) then drafts with the version
    in service, switched by a promotion like the transformers backend. A fixed name serves one
    merged model whatever the version."""
    return template.replace("{adapter_name}", adapter.rstrip("/").rsplit("/", 1)[-1])


def render_prompt_text(messages: list[dict[str, str]], *, date_string: str) -> str:
    """The prompt as the transformers backend renders it (worker.backends.transformers.
    render_prompt_text), without loading a tokenizer: the same template, generation prompt
    and date, <|begin_of_text|> included."""
    template = _compiled_template(CHAT_TEMPLATE_PATH.read_text(encoding="utf-8"))
    return template.render(
        messages=messages,
        add_generation_prompt=True,
        date_string=date_string,
        bos_token=BOS_TEXT,
        eos_token="<|eot_id|>",  # noqa: S106 - a token, not a password
    )


def server_prompt(messages: list[dict[str, str]], *, date_string: str) -> str:
    """What is sent: the rendered text less the <|begin_of_text|> the server puts back."""
    return render_prompt_text(messages, date_string=date_string).removeprefix(BOS_TEXT)


def sampling_parameters(
    engine: str, *, temperature: float, min_p: float, max_tokens: int
) -> dict[str, Any]:
    """The card's sampling (temperature, then min_p on the tempered distribution, as
    transformers does; nothing else) in each engine's terms, every sampler pinned.

    - vllm: temperature before min_p already; top_k -1 and top_p 1 disable those samplers,
      penalties neutral.
    - llama.cpp (llama-server): its default chain adds top_k 40, top_p 0.95, typical, DRY, XTC
      and applies temperature last; `samplers` sets the chain to temperature then min_p.
    - llama-cpp-python's server: a fixed chain, top_k, typical, top_p, min_p, then temperature
      last. min_p keeps the tokens with p >= min_p * p_max; after temperature T the same test
      reads p^(1/T) >= min_p * p_max^(1/T), i.e. p >= min_p**T * p_max: applied before the
      temperature, min_p**T keeps exactly the card's tokens, and the temperature then gives
      them the card's probabilities (tests/worker/test_openai_backend.py measures it).
    """
    common = {
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "n": 1,
        "stream": False,
    }
    if engine == "vllm":
        return {**common, "min_p": min_p, "top_k": -1, "repetition_penalty": 1.0}
    if engine == "llama.cpp":
        return {
            **common,
            "min_p": min_p,
            "samplers": ["temperature", "min_p"],
            "top_k": 0,
            "typical_p": 1.0,
            "repeat_penalty": 1.0,
            "dry_multiplier": 0.0,
            "xtc_probability": 0.0,
            "top_n_sigma": -1.0,
            "mirostat": 0,
            "dynatemp_range": 0.0,
            "cache_prompt": True,
        }
    if engine == "llama-cpp-python":
        return {
            **common,
            "min_p": min_p**temperature,
            "top_k": 0,
            "typical_p": 1.0,
            "repeat_penalty": 1.0,
            "tfs_z": 1.0,
            "mirostat_mode": 0,
        }
    raise ValueError(f"Unknown APPRECIATION_INFERENCE_ENGINE {engine!r}: use {', '.join(ENGINES)}")


class OpenAICompatibleBackend(BaseBackend):
    """Keyword options override the APPRECIATION_* settings (tests, benchmarks)."""

    def __init__(
        self,
        *,
        servers: Sequence[str] | None = None,
        model: str | None = None,
        engine: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        concurrency: int | None = None,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        min_p: float | None = None,
        chat_date: str | None = None,
        test_model: bool | None = None,
        base_model: str | None = None,
        adapter: str | None = None,
    ) -> None:
        super().__init__()
        # The model version the worker drafts with (generation.services.versions): the server
        # holds the weights; the served name may follow the version (see served_model_name).
        self.base_model = str(_setting("APPRECIATION_BASE_MODEL", base_model))
        self.adapter = str(_setting("APPRECIATION_ADAPTER", adapter))
        self.servers = [
            url.rstrip("/") for url in _setting("APPRECIATION_INFERENCE_SERVERS", servers) if url
        ]
        self.model = served_model_name(
            str(_setting("APPRECIATION_INFERENCE_MODEL", model)), adapter=self.adapter
        )
        self.engine = str(_setting("APPRECIATION_INFERENCE_ENGINE", engine))
        self.api_key = str(_setting("APPRECIATION_INFERENCE_API_KEY", api_key) or "")
        self.timeout = float(_setting("APPRECIATION_INFERENCE_TIMEOUT", timeout))
        self.retries = max(1, int(_setting("APPRECIATION_INFERENCE_RETRIES", retries)))
        self.backoff = float(_setting("APPRECIATION_INFERENCE_BACKOFF", backoff))
        self.concurrency = max(1, int(_setting("APPRECIATION_INFERENCE_CONCURRENCY", concurrency)))
        self.max_new_tokens = int(_setting("APPRECIATION_MAX_NEW_TOKENS", max_new_tokens))
        self.temperature = float(_setting("APPRECIATION_TEMPERATURE", temperature))
        self.min_p = float(_setting("APPRECIATION_MIN_P", min_p))
        self.chat_date = str(_setting("APPRECIATION_CHAT_DATE", chat_date))
        self.test_model = bool(_setting("APPRECIATION_TEST_MODEL", test_model))
        # Checked now: a wrong engine name fails the worker's first job, not a draft's request.
        self.sampling = sampling_parameters(
            self.engine,
            temperature=self.temperature,
            min_p=self.min_p,
            max_tokens=self.max_new_tokens,
        )
        self.failure_reason: str | None = None
        self._client: Any = None
        self._lock = threading.Lock()
        self._next_server = 0

    # --- the servers' state ---

    def check_available(self) -> ModelAvailability:
        """Ask each server for its models (GET /models) in a few seconds: available when one
        answers and serves APPRECIATION_INFERENCE_MODEL."""
        started = time.monotonic()
        if not self.servers:
            return ModelAvailability(
                available=False,
                base_model=self.model,
                missing=("APPRECIATION_INFERENCE_SERVERS is empty: no inference server to ask",),
                seconds=time.monotonic() - started,
                user_message=INFERENCE_SERVER_USER_MESSAGE,
            )
        problems = []
        for server in self.servers:
            problem = self._check_server(server)
            if problem is None:
                return ModelAvailability(
                    available=True, base_model=self.model, seconds=time.monotonic() - started
                )
            problems.append(problem)
        return ModelAvailability(
            available=False,
            base_model=self.model,
            missing=tuple(problems),
            seconds=time.monotonic() - started,
            user_message=INFERENCE_SERVER_USER_MESSAGE,
        )

    def _check_server(self, server: str) -> str | None:
        """None when the server answers and serves the model, else what is wrong (in French:
        administrators read it on the workers' state)."""
        import httpx2

        try:
            response = self._http().get(
                f"{server}/models",
                timeout=httpx2.Timeout(CHECK_TIMEOUT_SECONDS),
            )
        except httpx2.HTTPError as exc:
            return f"serveur d'inférence injoignable : {server} ({type(exc).__name__}: {exc})"
        if response.status_code != 200:
            return f"serveur d'inférence en erreur : {server} (HTTP {response.status_code})"
        try:
            served = [entry.get("id") for entry in response.json().get("data", [])]
        except (ValueError, AttributeError):
            return f"serveur d'inférence : {server} ne liste pas ses modèles (GET /models)"
        if self.model and self.model not in served:
            return (
                f"serveur d'inférence : {server} ne sert pas le modèle {self.model}"
                f" (il sert : {', '.join(map(str, served)) or 'aucun'})"
            )
        return None

    def load(self) -> None:
        """Nothing to load: the server is asked; ready once it answers."""
        availability = self.check_available()
        if not availability.available:
            self._status = STATUS_FAILED
            self.failure_reason = availability.detail
            raise InferenceServerError(availability.detail)
        self.failure_reason = None
        self._status = STATUS_READY

    def batch_size(self, *, prompt_tokens: int, rows: int | None = None) -> int:
        """A class at once: the server batches what is in flight."""
        return self.concurrency

    def model_info(self) -> dict[str, Any]:

        return {
            "backend": f"{type(self).__module__}.{type(self).__qualname__}",
            # What the server is set up with (README): the worker cannot see the weights.
            "base_model": self.base_model,
            "adapter": self.adapter,
            "served_model": self.model,
            "servers": list(self.servers),
            "engine": self.engine,
            "merged": None,
            "chat_date": self.chat_date,
            "test_model": self.test_model,
            "status": self.status,
            "failure_reason": self.failure_reason,
        }

    # --- generation ---

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        seed: int | None = None,
        on_result: ResultCallback | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[GenerationResult]:
        """Every request in flight at once (up to the concurrency), one seed each. Each text
        is handed to on_result as its answer arrives; on_progress at each answer and at least
        every PROGRESS_INTERVAL seconds while a slow server keeps the class waiting."""
        if not requests:
            return []
        if not self.servers:
            raise InferenceServerError("APPRECIATION_INFERENCE_SERVERS is empty")
        started = time.monotonic()
        with self._lock:
            first_server = self._next_server
            self._next_server = (self._next_server + len(requests)) % len(self.servers)
        workers = min(self.concurrency, len(requests))
        pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="inference")
        results: dict[int, GenerationResult] = {}
        try:
            futures = {
                pool.submit(
                    self._complete,
                    request,
                    seed=None if seed is None else seed + index,
                    server_index=first_server + index,
                ): index
                for index, request in enumerate(requests)
            }
            pending = set(futures)
            while pending:
                done, pending = concurrent.futures.wait(
                    pending,
                    timeout=PROGRESS_INTERVAL,
                    return_when=concurrent.futures.FIRST_COMPLETED,
                )
                for future in done:
                    result = future.result()  # a server error goes up: the job fails or waits
                    results[futures[future]] = result
                    if on_result is not None:
                        on_result(result)
                if on_progress is not None:
                    on_progress(
                        GenerationProgress(
                            step=len(results),
                            steps=len(requests),
                            finished=len(results),
                            rows=len(requests),
                        )
                    )
        except InferenceServerError as exc:
            self._status = STATUS_FAILED
            self.failure_reason = exc.reason
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        self._status = STATUS_READY
        self.failure_reason = None
        logger.info(
            "Generated %d texts on %d server(s) in %.1f s",
            len(requests),
            len(self.servers),
            time.monotonic() - started,
        )
        return [results[index] for index in range(len(requests))]

    def completion_payload(
        self, messages: list[dict[str, str]], *, seed: int | None
    ) -> dict[str, Any]:
        payload = {
            "model": self.model,
            "prompt": server_prompt(messages, date_string=self.chat_date),
            **self.sampling,
        }
        if seed is not None:
            payload["seed"] = seed
        return payload

    def _complete(
        self, request: GenerationRequest, *, seed: int | None, server_index: int
    ) -> GenerationResult:
        payload = self.completion_payload(request.messages, seed=seed)
        body = self.post_with_retries("completions", payload, server_index=server_index)
        choice = body["choices"][0]
        usage = body.get("usage") or {}
        return GenerationResult(
            key=request.key,
            text=choice.get("text") or "",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            new_tokens=int(usage.get("completion_tokens") or 0),
        )

    def post_with_retries(
        self, endpoint: str, payload: dict[str, Any], *, server_index: int = 0
    ) -> dict[str, Any]:
        """POST to one server after another until one answers; the answer's JSON.

        Each failure waits backoff, 2 x backoff, 4 x backoff… (at most 30 s) and moves to the
        next server; after `retries` tries, InferenceServerError."""
        import httpx2

        failures = []
        for attempt in range(self.retries):
            server = self.servers[(server_index + attempt) % len(self.servers)]
            try:
                response = self._http().post(f"{server}/{endpoint}", json=payload)
                if response.status_code in RETRY_STATUSES:
                    raise httpx2.HTTPStatusError(
                        f"HTTP {response.status_code}: {response.text[:200]}",
                        request=response.request,
                        response=response,
                    )
                if response.status_code != 200:
                    raise _PermanentError(
                        f"{server}/{endpoint} answered HTTP {response.status_code}:"
                        f" {response.text[:500]}"
                    )
                return response.json()
            except _PermanentError as exc:
                raise InferenceServerError(str(exc)) from exc
            except (httpx2.HTTPError, ValueError) as exc:
                failures.append(f"{server}: {type(exc).__name__}: {exc}")
                if attempt + 1 < self.retries:
                    delay = min(self.backoff * 2**attempt, MAX_BACKOFF_SECONDS)
                    logger.warning(
                        "Inference request to %s failed (%s: %s); retry %d/%d in %.1f s",
                        server,
                        type(exc).__name__,
                        str(exc)[:200],
                        attempt + 1,
                        self.retries - 1,
                        delay,
                    )
                    time.sleep(delay)
        raise InferenceServerError(
            f"No inference server answered after {self.retries} tries: " + "; ".join(failures)
        )

    def _http(self) -> Any:
        import httpx2

        with self._lock:
            if self._client is None:
                headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
                self._client = httpx2.Client(
                    headers=headers,
                    timeout=httpx2.Timeout(self.timeout, connect=CONNECT_TIMEOUT_SECONDS),
                    limits=httpx2.Limits(
                        max_connections=self.concurrency,
                        max_keepalive_connections=self.concurrency,
                    ),
                )
            return self._client


def _setting(name: str, override: Any) -> Any:
    if override is not None:
        return override
    from django.conf import settings

    return getattr(settings, name)
