"""Every GPU figure of bench/README.md in one short run (bench/gpu.sh calls this).

Parts, each timed and written to <out>/gpu.json as it finishes (a part that fails records its
error and the others still run):

1. `class`: the transformers backend on a class of 35 x 90 new tokens against the card's way
   (bench/generation.py, the card's way on the first --card-students students: it drafts one
   at a time, so its students/second holds for the class); target <= 2 s, >= 10x.
2. `static-cache`: the same class with a static KV cache (transformers compiles the decoding
   step with torch.compile on CUDA when the cache is static); the prefix cache is off there
   (it hands generate() a dynamic cache). Run twice: the first call compiles.
3. `memory`: the batch size the backend chooses from free GPU memory (its estimate per
   sequence: KV cache x 1.5), then one batch of that size run, and the real peak
   (torch.cuda.max_memory_allocated) compared with the estimate.
4. `vllm` (when vLLM imports): the merged random 3B on the same class (target <= 1 s) and on a
   school's peak of 50 classes at once (target <= 2 min), the card's sampling settings,
   exactly --new-tokens tokens each, prefix caching on.

`--tiny` runs every part on the tiny test model (on the CPU when there is no GPU): a smoke run
of the script itself, figures meaningless. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench import generation as bench_generation  # noqa: E402
from bench.generation import (  # noqa: E402
    MIN_P,
    TEMPERATURE,
    build_random_3b,
    class_of,
    machine,
    synchronize,
)
from generation.prompts import CHAT_TEMPLATE_DATE  # noqa: E402
from worker.backends.transformers import (  # noqa: E402
    KV_CACHE_OVERHEAD,
    TransformersBackend,
    kv_cache_bytes_per_token,
    prompt_token_ids,
)
from worker.testing import build_test_model  # noqa: E402

# A school's peak: every class of a secondary school drafted at once (bench/README.md).
PEAK_CLASSES = 50
SUBJECTS = (
    "Histoire-Géographie",
    "Mathématiques",
    "Français",
    "Anglais",
    "Physique-Chimie",
    "SVT",
    "Philosophie",
    "Sciences économiques et sociales",
)


def backend_for(base: Path, adapter: Path, device: str, new_tokens: int, **options):
    return TransformersBackend(
        base_model=str(base),
        adapter=str(adapter),
        device=device,
        dtype="auto",
        batch_size=0,
        max_new_tokens=new_tokens,
        temperature=TEMPERATURE,
        min_p=MIN_P,
        top_k=0,
        top_p=1.0,
        test_model=True,
        chat_date=CHAT_TEMPLATE_DATE,
        **options,
    )


def timed_generate(backend, requests, device) -> float:
    synchronize(device)
    started = time.monotonic()
    backend.generate(requests, seed=0)
    synchronize(device)
    return round(time.monotonic() - started, 3)


def part_class(args, base, adapter, device, out: Path) -> dict:
    argv = [
        "--students", str(args.students),
        "--new-tokens", str(args.new_tokens),
        "--device", str(device),
        "--ways", "card,ours",
        "--card-students", str(args.card_students),
        "--model-dir", str(args.model_dir),
        "--out", str(out / "generation-class.json"),
    ]  # fmt: skip
    if args.tiny:
        argv.append("--tiny")
    report = bench_generation.main(argv)
    ours = report["ways"]["ours"]
    return {
        "generate_seconds": ours["generate_seconds"],
        "batch_size": ours["batch_size"],
        "time": ours["time"],
        "ratio": report.get("ratio"),
        "card_students_per_second": report["ways"]["card"]["students_per_second"],
        "targets": {"generate_seconds_at_most": 2.0, "ratio_at_least": 10.0},
    }


def part_static_cache(args, base, adapter, device, requests) -> dict:
    backend = backend_for(base, adapter, str(device), args.new_tokens, prefix_cache=False)
    backend.load()
    backend.model.generation_config.min_new_tokens = args.new_tokens
    result = {"dynamic_cache_no_prefix_seconds": timed_generate(backend, requests, device)}
    backend.model.generation_config.cache_implementation = "static"
    result["static_first_call_seconds"] = timed_generate(backend, requests, device)  # compiles
    result["static_seconds"] = timed_generate(backend, requests, device)
    del backend
    release()
    return result


def part_memory(args, base, adapter, device) -> dict:
    if device.type != "cuda":
        return {"skipped": "no CUDA device: the CPU batch comes from MemAvailable instead"}
    backend = backend_for(base, adapter, str(device), args.new_tokens)
    backend.load()
    backend.model.generation_config.min_new_tokens = args.new_tokens
    # Enough students of one class-like prompt set to fill the batch the backend chooses.
    probe = class_of(8)
    prompt_tokens = max(
        len(prompt_token_ids(backend.tokenizer, r.messages, date_string=backend.chat_date))
        for r in probe
    )
    free_before, total = torch.cuda.mem_get_info(device)
    size = backend.batch_size(prompt_tokens=prompt_tokens)
    per_sequence = (
        (prompt_tokens + args.new_tokens)
        * kv_cache_bytes_per_token(backend.model.config, backend.dtype)
        * KV_CACHE_OVERHEAD
    )
    requests = class_of(size)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    seconds = timed_generate(backend, requests, device)
    peak = torch.cuda.max_memory_allocated(device) - baseline
    result = {
        "free_gib_before": round(free_before / 2**30, 2),
        "total_gib": round(total / 2**30, 2),
        "prompt_tokens": prompt_tokens,
        "chosen_batch_size": size,
        "estimated_bytes_per_sequence": int(per_sequence),
        "estimated_gib_for_batch": round(per_sequence * size / 2**30, 3),
        "measured_peak_gib_above_weights": round(peak / 2**30, 3),
        "measured_over_estimated": round(peak / (per_sequence * size), 3),
        "generate_seconds": seconds,
        "students_per_second": round(size / seconds, 2),
    }
    del backend
    release()
    return result


def merge_for_vllm(base: Path, adapter: Path, directory: Path) -> Path:
    """The random 3B with its LoRA merged, saved once (vLLM serves a plain checkpoint)."""
    merged = directory / "merged"
    if (merged / "COMPLETE").exists():
        return merged
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.save_pretrained(merged, safe_serialization=True)
    AutoTokenizer.from_pretrained(adapter).save_pretrained(merged)
    del model
    gc.collect()
    (merged / "COMPLETE").write_text("ok\n")
    return merged


def part_vllm(args, base, adapter, model_dir: Path) -> dict:
    try:
        import vllm
        from vllm import LLM, SamplingParams
    except ImportError as exc:
        return {
            "skipped": f"vLLM does not import ({exc}): install it in this venv (bench/gpu.sh"
            " says how) to measure it"
        }
    from transformers import AutoTokenizer

    merged = merge_for_vllm(base, adapter, model_dir)
    tokenizer = AutoTokenizer.from_pretrained(merged)
    started = time.monotonic()
    llm = LLM(
        model=str(merged),
        dtype="bfloat16",
        seed=0,
        enable_prefix_caching=True,
        gpu_memory_utilization=0.85,
        max_model_len=1024,
        # Prompts go in as token ids (the test tokenizer's, within Llama's vocabulary).
        skip_tokenizer_init=True,
    )
    load_seconds = round(time.monotonic() - started, 1)
    params = SamplingParams(
        temperature=TEMPERATURE,
        min_p=MIN_P,
        top_p=1.0,
        top_k=0 if _vllm_accepts_zero_top_k() else -1,
        max_tokens=args.new_tokens,
        min_tokens=args.new_tokens,
        detokenize=False,
        seed=0,
    )

    def prompts_of(requests):
        return [
            {
                "prompt_token_ids": prompt_token_ids(
                    tokenizer, request.messages, date_string=CHAT_TEMPLATE_DATE
                )
            }
            for request in requests
        ]

    def run(llm, requests) -> dict:
        prompts = prompts_of(requests)
        started = time.monotonic()
        outputs = llm.generate(prompts, params, use_tqdm=False)
        seconds = time.monotonic() - started
        tokens = sum(len(output.outputs[0].token_ids) for output in outputs)
        return {
            "students": len(requests),
            "seconds": round(seconds, 3),
            "students_per_second": round(len(requests) / seconds, 1),
            "new_tokens_total": tokens,
        }

    one_class = class_of(args.students)
    run(llm, one_class[:4])  # warm-up: CUDA graphs, kernels
    result = {"version": vllm.__version__, "load_seconds": load_seconds}
    result["class"] = run(llm, one_class)
    result["class"]["target_seconds_at_most"] = 1.0
    peak = []
    for index in range(args.peak_classes):
        peak += class_of(
            args.students,
            subject=SUBJECTS[index % len(SUBJECTS)],
            trimester=1 + index % 3,
        )
    result["school_peak"] = run(llm, peak)
    result["school_peak"].update(classes=args.peak_classes, target_seconds_at_most=120.0)
    del llm
    release()
    return result


def _vllm_accepts_zero_top_k() -> bool:
    from vllm import SamplingParams

    try:
        SamplingParams(top_k=0)
    except (ValueError, TypeError):
        return False
    return True


def release() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


PARTS = ("class", "static-cache", "memory", "vllm")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu")
    parser.add_argument("--parts", default=",".join(PARTS), help=", ".join(PARTS))
    parser.add_argument("--students", type=int, default=35)
    parser.add_argument("--new-tokens", type=int, default=90)
    parser.add_argument("--card-students", type=int, default=4)
    parser.add_argument("--peak-classes", type=int, default=PEAK_CLASSES)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model-dir", type=Path, default=bench_generation.DEFAULT_MODEL_DIR)
    parser.add_argument("--tiny", action="store_true", help="Smoke run on the tiny model.")
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    device = bench_generation.resolve_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["gpu.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(device),
        "model": "tiny test model" if args.tiny else "Llama-3.2-3B shape, random weights",
        "students": args.students,
        "new_tokens": args.new_tokens,
        "parts": {},
    }
    if device.type == "cuda":
        report["machine"]["gpu_memory_gib"] = round(
            torch.cuda.get_device_properties(device).total_memory / 2**30, 1
        )
    with tempfile.TemporaryDirectory() as tiny_dir:
        if args.tiny:
            base, adapter = build_test_model(Path(tiny_dir))
            model_dir = Path(tiny_dir)
        else:
            base, adapter = build_random_3b(args.model_dir)
            model_dir = args.model_dir
        requests = class_of(args.students)
        for part in parts:
            print(f"== {part}", flush=True)
            started = time.monotonic()
            try:
                if part == "class":
                    result = part_class(args, base, adapter, device, args.out)
                elif part == "static-cache":
                    result = part_static_cache(args, base, adapter, device, requests)
                elif part == "memory":
                    result = part_memory(args, base, adapter, device)
                else:
                    result = part_vllm(args, base, adapter, model_dir)
            except Exception as exc:  # one part's failure must not lose the others' figures
                traceback.print_exc()
                result = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
                release()
            result["part_seconds"] = round(time.monotonic() - started, 1)
            report["parts"][part] = result
            print(json.dumps(result, ensure_ascii=False), flush=True)
            (args.out / "gpu.json").write_text(
                json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
    print(f"Results: {args.out / 'gpu.json'}")
    return report


if __name__ == "__main__":
    main()
