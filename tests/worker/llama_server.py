"""A real OpenAI-compatible server on 127.0.0.1 for the tests: llama-cpp-python's server
(llama.cpp built from source by `make install`) serving the tiny test model as GGUF."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import pytest

MODEL_ALIAS = "appreciation"
START_TIMEOUT = 120.0


def unavailable(message: str):
    """Skip with the reason on a developer's machine; fail in CI, where it must run."""
    if os.environ.get("CI"):
        pytest.fail(f"The test inference server cannot run: {message}", pytrace=False)
    pytest.skip(f"The test inference server cannot run: {message}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` on a port of 127.0.0.1; start(), kill(), start() again."""

    def __init__(self, model_path: Path, *, port: int | None = None) -> None:
        self.model_path = Path(model_path)
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.output: deque[str] = deque(maxlen=200)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--model_alias",
            MODEL_ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            "2048",
            "--n_threads",
            "1",
            # The raw logprobs of the first token (compared with transformers' logits), with
            # keys and values kept in float32 like the model (llama.cpp's default is float16:
            # logprobs then differ from transformers' by up to 7e-4, against 1.4e-6 so).
            "--logits_all",
            "True",
            "--type_k",
            "0",  # GGML_TYPE_F32
            "--type_v",
            "0",
        ]

    def start(self) -> LlamaServer:
        import httpx2

        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        threading.Thread(target=self._read_output, args=(self.process,), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx2.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return self
            except httpx2.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        unavailable(f"{self.command()[0]} did not answer:\n" + "\n".join(list(self.output)[-30:]))
        return self

    def _read_output(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.output.append(line.rstrip())

    def kill(self) -> None:
        """SIGKILL, as an OOM killer or a crash would: no goodbye to the clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


def llama_server_binary() -> Path:
    """llama.cpp's own `llama-server`: APPRECIATION_LLAMA_SERVER, or where
    scripts/build_llama_server.sh builds it."""
    configured = os.environ.get("APPRECIATION_LLAMA_SERVER")
    if configured:
        return Path(configured)
    root = Path(__file__).resolve().parents[2]
    lock = (root / "requirements.lock").read_text(encoding="utf-8").splitlines()
    version = next(line.split("==")[1] for line in lock if line.startswith("llama_cpp_python=="))
    home = Path.home() / ".cache" / "appreciation" / f"llama-server-{version}"
    return home / "build" / "bin" / "llama-server"


class LlamaCppServer(LlamaServer):
    """llama.cpp's C++ `llama-server` (the engine the README suggests on CPUs)."""

    def __init__(self, model_path: Path, *, binary: Path, port: int | None = None) -> None:
        super().__init__(model_path, port=port)
        self.binary = binary

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "--model",
            str(self.model_path),
            "--alias",
            MODEL_ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ctx-size",
            "2048",
            "--parallel",
            "2",
            "--threads",
            "1",
            # Keys and values in float32, like the model (see LlamaServer), and no flash
            # attention (on a CPU it rounds queries to float16: logprobs 1e-3 off, 2.4e-6 so).
            "--cache-type-k",
            "f32",
            "--cache-type-v",
            "f32",
            "--flash-attn",
            "off",
            "--no-warmup",
        ]
