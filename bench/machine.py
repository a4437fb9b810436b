"""What the benchmarks say about the machine they ran on, and its own matmul speed."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from typing import Any

# One Llama-3.2-3B MLP projection (gate_proj/up_proj): 3072 in, 8192 out.
LINEAR_IN, LINEAR_OUT = 3072, 8192
# 1 row: a decoding step of one student; 8 and 35: a batch, a class; 300: a prefill.
LINEAR_ROWS = (1, 8, 35, 300)


def cpu_model() -> str:
    """`lscpu`'s model name ("AMD EPYC"): platform.processor() is often empty on Linux."""
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor()
    for line in output.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def cpu_flags(wanted: tuple[str, ...] = ("avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")):
    """The CPU flags that decide bf16/int8 speed (AMX doubles AVX-512's rate)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return {flag: flag in present for flag in wanted}
    except OSError:
        pass
    return {}


def memory_gib() -> dict[str, float]:
    info = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                name, value = line.split(":", 1)
                if name in ("MemTotal", "MemAvailable"):
                    info[name] = round(int(value.split()[0]) / 2**20, 1)
    except OSError:
        pass
    return info


def describe() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "flags": cpu_flags(),
        "memory_gib": memory_gib(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def linear_gflops(
    *, kinds: tuple[str, ...] = ("bfloat16", "int8-dynamic", "int8-weight-only"), repeat=5
) -> dict[str, dict[str, float]]:
    """GFLOPS of one 3072x8192 linear at 1/8/35/300 rows, best of `repeat`, per weight kind.

    bfloat16: F.linear in bf16 (what the model runs). int8-dynamic: torch.ao's
    quantize_dynamic (fbgemm: int8 weights and activations quantized per call, float32 in
    and out). int8-weight-only: int8 weights with per-channel scales, bf16 activations
    (aten._weight_int8pack_mm). The cost of a decoding step is ~1 row per student.
    """
    import torch

    from worker.backends.quantize import linear_for

    torch.manual_seed(0)
    weight = torch.randn(LINEAR_OUT, LINEAR_IN) * 0.02
    results: dict[str, dict[str, float]] = {}
    for kind in kinds:
        forward, dtype = linear_for(kind, weight)
        figures = {}
        for rows in LINEAR_ROWS:
            x = torch.randn(rows, LINEAR_IN).to(dtype)
            with torch.inference_mode():
                started = time.perf_counter()
                forward(x)  # warm-up: packing, allocator, thread pool
                # Enough calls per sample that a sample lasts about 0.2 s: timer noise out.
                calls = max(1, int(0.2 / max(time.perf_counter() - started, 1e-4)))
                best = float("inf")
                for _ in range(repeat):
                    started = time.perf_counter()
                    for _ in range(calls):
                        forward(x)
                    best = min(best, (time.perf_counter() - started) / calls)
            figures[str(rows)] = round(2 * rows * LINEAR_IN * LINEAR_OUT / best / 1e9, 1)
        results[kind] = figures
    return results


if __name__ == "__main__":
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    print(json.dumps({"machine": describe(), "linear_gflops": linear_gflops()}, indent=2))
