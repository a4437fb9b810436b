"""Benchmark: the model card's way of generating against ours, on the same class of students.

The card's way: one student at a time, the adapter loaded unmerged (model.load_adapter) on a
float16 base, as its app.py does, whatever the device. Ours: TransformersBackend, the adapter
merged, in the platform's automatic dtype (bf16 on GPUs and CPUs that compute it natively, float32
on other CPUs), the whole class in one batch, the shared system turn computed once (prefix
cache; the way `ours-no-prefix-cache` runs without it). `ours-batch8` is ours in batches of 8
(the CPU default before), `ours-int8` ours with APPRECIATION_QUANTIZE=int8 (CPU only). The class
is one job's: one subject, one trimester. Our ways report where the time goes (prefill, each
decoding step, the rest) from the backend's own progress callbacks, and how long the progress
stood still at most; --matmul measures the machine's own linear-layer GFLOPS in the same run.

Nothing is downloaded: the model is the real Llama-3.2-3B architecture (published dimensions)
with random weights and a random LoRA r=16 on the seven projections, and the tokenizer is the
test model's (its ids fit Llama's vocabulary; the card's prompts come out at about 250 tokens,
like with Llama's own tokenizer). Random weights produce noise, so both ways are forced to
generate exactly --new-tokens tokens (min_new_tokens = max_new_tokens): same work, fair timing.

    python bench/generation.py                      # class of 8, 20 new tokens, CPU
    python bench/generation.py --tiny --students 3  # smoke run on the tiny test model
    python bench/generation.py --students 35 --new-tokens 90 --ways ours,ours-batch8,ours-int8 \
        --matmul                                    # a class: one batch, batches of 8, int8
    python bench/generation.py --students 35 --new-tokens 90 --device cuda

It is a benchmark, not a test: see bench/README.md for figures and targets.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
)

from bench.machine import cpu_flags, cpu_model, linear_gflops, memory_gib  # noqa: E402
from generation.backends import GenerationRequest  # noqa: E402
from generation.prompts import CHAT_TEMPLATE_DATE, PromptInputs, build_messages  # noqa: E402
from worker.backends.transformers import TransformersBackend  # noqa: E402
from worker.testing import (  # noqa: E402
    BOS,
    EOM,
    EOS,
    EOT,
    build_test_model,
    build_tokenizer,
    write_model_pair,
)

LABELS = {
    "card": "Card's way",
    "ours": "Our way: batched, merged",
    "ours-no-prefix-cache": "Our way without the prefix cache",
    "ours-batch8": "Our way in batches of 8 (before)",
    "ours-int8": "Our way, int8 weights",
}
DEFAULT_OUT = ROOT / "bench" / "results" / "generation.json"
DEFAULT_MODEL_DIR = ROOT / "var" / "bench" / "llama-3.2-3b-random"
SUBJECT = "Histoire-Géographie"
TRIMESTER = 2
WAYS = ("card", "ours", "ours-no-prefix-cache", "ours-batch8", "ours-int8")
# Prompts whose next-token scores compare int8 with the default dtype (ours-int8).
COMPARED_PROMPTS = 4
# The model card's sampling settings.
TEMPERATURE = 1.5
MIN_P = 0.1


def llama32_3b_config(tokenizer) -> LlamaConfig:
    """Llama-3.2-3B's published shape (config.json of meta-llama/Llama-3.2-3B-Instruct)."""
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in (BOS, EOS, EOM, EOT)}
    return LlamaConfig(
        vocab_size=128256,
        hidden_size=3072,
        intermediate_size=8192,
        num_hidden_layers=28,
        num_attention_heads=24,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=131072,
        rope_theta=500000.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        rms_norm_eps=1e-5,
        hidden_act="silu",
        tie_word_embeddings=True,
        bos_token_id=ids[BOS],
        eos_token_id=[ids[EOS], ids[EOM], ids[EOT]],
    )


def build_random_3b(directory: Path) -> tuple[Path, Path]:
    """Write the random 3B base and LoRA (r=16, alpha=16, random B) once; reuse it after."""
    base_dir, adapter_dir = directory / "base", directory / "adapter"
    done = directory / "COMPLETE"
    if done.exists():
        return base_dir, adapter_dir
    print(f"Building a random Llama-3.2-3B in {directory} (about 6.5 GB, once)…", flush=True)
    tokenizer = build_tokenizer()
    config = llama32_3b_config(tokenizer)
    torch.manual_seed(0)
    model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    # As Llama 3.2 Instruct's generation_config.json: the card's code inherits top_p 0.9.
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        do_sample=True,
        temperature=0.6,
        top_p=0.9,
    )
    write_model_pair(
        directory, model=model, tokenizer=tokenizer, lora_rank=16, lora_alpha=16, lora_b_std=0.02
    )
    del model
    gc.collect()
    done.write_text("ok\n")
    return base_dir, adapter_dir


def class_of(students: int, *, subject: str = SUBJECT, trimester: int = TRIMESTER):
    """A class as the platform drafts it: one job is one teaching assignment and one term,
    so one subject and one trimester; averages and ratings vary from student to student."""
    rng = random.Random(2024)  # noqa: S311 - reproducible inputs, not security
    requests = []
    for index in range(students):
        averages = [rng.randrange(8, 39) / 2 for _ in range(trimester)]
        inputs = PromptInputs(
            subject_name=subject,
            trimester=trimester,
            averages=(*averages, None, None)[:3],
            behaviour=rng.randint(2, 10),
            participation=rng.randint(2, 10),
            work=rng.randint(2, 10),
        )
        requests.append(GenerationRequest(key=f"student-{index}", messages=build_messages(inputs)))
    return requests


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_card_way(base: Path, adapter: Path, requests, new_tokens: int, device: torch.device):
    """app.py from the model card, line for line where it matters (float16, load_adapter,
    one student per generate call), plus min_new_tokens and the pinned date for fairness."""
    started = time.monotonic()
    model = AutoModelForCausalLM.from_pretrained(
        base, dtype=torch.float16, low_cpu_mem_usage=True
    ).to(device)
    model.load_adapter(str(adapter))
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    synchronize(device)
    load_seconds = time.monotonic() - started
    new_counts = []
    prompt_tokens = []
    load_before = os.getloadavg()[0]
    cpu_started = time.process_time()
    started = time.monotonic()
    for number, request in enumerate(requests, start=1):
        student_started = time.monotonic()
        inputs = tokenizer.apply_chat_template(
            request.messages,
            tokenize=True,
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=False,
            date_string=CHAT_TEMPLATE_DATE,
        ).to(device)
        prompt_tokens.append(int(inputs.shape[1]))
        outputs = model.generate(
            input_ids=inputs,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            use_cache=True,
            temperature=TEMPERATURE,
            min_p=MIN_P,
            pad_token_id=tokenizer.eos_token_id,
        )
        tokenizer.batch_decode(outputs[:, inputs.shape[1] :], skip_special_tokens=True)
        new_counts.append(outputs.shape[1] - inputs.shape[1])
        elapsed = time.monotonic() - student_started
        print(f"  student {number}/{len(requests)}: {elapsed:.1f} s", flush=True)
    synchronize(device)
    generate_seconds = time.monotonic() - started
    result = {
        **contention(load_before, cpu_started),
        "description": "one student per call, adapter unmerged (load_adapter), float16",
        "dtype": "float16",
        "merged": False,
        "batch_size": 1,
        "load_seconds": round(load_seconds, 2),
        "generate_seconds": round(generate_seconds, 3),
        "students_per_second": len(requests) / generate_seconds,
        "new_tokens_total": int(sum(new_counts)),
    }
    del model
    release(device)
    return result, prompt_tokens


def run_our_way(
    base: Path,
    adapter: Path,
    requests,
    new_tokens: int,
    device: torch.device,
    dtype: str,
    *,
    prefix_cache: bool = True,
    batch_size: int = 0,
    quantize: str = "",
    compare_with: torch.Tensor | None = None,
    keep_scores: bool = False,
):
    backend = TransformersBackend(
        base_model=str(base),
        adapter=str(adapter),
        device=str(device),
        dtype=dtype,
        batch_size=batch_size,
        max_new_tokens=new_tokens,
        temperature=TEMPERATURE,
        min_p=MIN_P,
        top_k=0,
        top_p=1.0,
        test_model=True,
        prefix_cache=prefix_cache,
        quantize=quantize,
        chat_date=CHAT_TEMPLATE_DATE,  # as the card's way: no Django settings needed
    )
    started = time.monotonic()
    backend.load()
    synchronize(device)
    load_seconds = time.monotonic() - started
    # Random weights may stop at any moment: force the same length as the card's way.
    backend.model.generation_config.min_new_tokens = new_tokens
    events: list[tuple[float, str, int]] = []
    load_before = os.getloadavg()[0]
    cpu_started = time.process_time()
    started = time.monotonic()
    results = backend.generate(
        requests,
        seed=0,
        on_progress=lambda p: events.append(
            (time.monotonic() - started, "step" if p.phase == "decode" else "prefill", p.step)
        ),
        on_result=lambda r: events.append((time.monotonic() - started, "result", 0)),
    )
    synchronize(device)
    generate_seconds = time.monotonic() - started
    prompt_tokens = [result.prompt_tokens for result in results]
    result = {
        **contention(load_before, cpu_started),
        "description": "TransformersBackend: batched, adapter merged, automatic dtype"
        + ("" if prefix_cache else ", shared prompt prefix NOT cached")
        + (f", {quantize} weights" if quantize else ""),
        "dtype": str(backend.dtype).removeprefix("torch."),
        "quantize": quantize,
        "merged": True,
        "prefix_cache": dict(backend.prefix_stats, enabled=prefix_cache),
        "batch_size": min(
            len(requests),
            backend.batch_size(prompt_tokens=max(prompt_tokens), rows=len(requests)),
        ),
        "load_seconds": round(load_seconds, 2),
        "generate_seconds": round(generate_seconds, 3),
        "students_per_second": len(requests) / generate_seconds,
        "new_tokens_total": int(sum(result.new_tokens for result in results)),
        "time": time_breakdown(events, generate_seconds),
    }
    scores = None
    if compare_with is not None or keep_scores:
        scores = next_token_scores(backend, requests[:COMPARED_PROMPTS])
    if compare_with is not None:
        result["versus_default_dtype"] = compare_scores(scores, compare_with)
    del backend
    release(device)
    return result, prompt_tokens, scores


def time_breakdown(events: list[tuple[float, str, int]], total: float) -> dict:
    """Where the time of one generate() went, from its progress callbacks.

    A batch starts where the previous one's last step ended; its first decoding step comes
    after the prefill (the prompts through the model, in chunks of rows on a CPU, and the first
    token sampled), each further step is a decoding step; the rest is tokenizing, the cache
    copies and decoding texts. max_quiet_seconds: the longest time with no step or chunk
    reported and no draft handed out (the progress bar's worst).
    """
    units = [(at, kind, step) for at, kind, step in events if kind in ("step", "prefill")]
    prefills, decode_steps = [], []
    batch_start = 0.0
    previous = None  # (at, kind, unit) of the batch's last unit
    for at, kind, step in units:
        if previous is not None and step <= previous[2]:  # units restart: a new batch
            batch_start = previous[0]
            previous = None
        if kind == "prefill":
            previous = (at, kind, step)
            continue
        if previous is None or previous[1] == "prefill":
            prefills.append(at - batch_start)  # the prompts read and the first token
        else:
            decode_steps.append(at - previous[0])
        previous = (at, kind, step)
    marks = [0.0, *(at for at, _, _ in events), total]
    quiet = max(later - earlier for earlier, later in zip(marks, marks[1:], strict=False))
    results = [at for at, kind, _ in events if kind == "result"]
    breakdown = {
        "batches": len(prefills),
        "prefill_seconds": [round(value, 2) for value in prefills],
        "decode_steps": len(decode_steps),
        "decode_seconds": round(sum(decode_steps), 2),
        "rest_seconds": round(total - sum(prefills) - sum(decode_steps), 2),
        "max_quiet_seconds": round(quiet, 2),
        "first_draft_seconds": round(results[0], 2) if results else None,
    }
    if decode_steps:
        breakdown["decode_step_seconds"] = {
            "mean": round(statistics.mean(decode_steps), 3),
            "median": round(statistics.median(decode_steps), 3),
            "max": round(max(decode_steps), 3),
        }
    return breakdown


def next_token_scores(backend: TransformersBackend, requests) -> torch.Tensor:
    """The last position's logits (float32) of a few whole prompts, to compare dtypes."""
    from worker.backends.transformers import prompt_token_ids

    rows = []
    with torch.inference_mode():
        for request in requests:
            ids = prompt_token_ids(
                backend.tokenizer, request.messages, date_string=backend.chat_date
            )
            output = backend.model(
                input_ids=torch.tensor([ids], device=backend.device), logits_to_keep=1
            )
            rows.append(output.logits[0, -1].float().cpu())
    return torch.stack(rows)


def compare_scores(scores: torch.Tensor, reference: torch.Tensor) -> dict:
    """How far one way's next-token scores are from the reference's: what sampling sees."""
    probabilities = torch.softmax(reference / TEMPERATURE, dim=-1)
    log_ref = torch.log_softmax(reference / TEMPERATURE, dim=-1)
    log_other = torch.log_softmax(scores / TEMPERATURE, dim=-1)
    kl = (probabilities * (log_ref - log_other)).sum(-1)
    top10_ref = reference.topk(10, dim=-1).indices
    top10_other = scores.topk(10, dim=-1).indices
    overlap = [
        len(set(a.tolist()) & set(b.tolist())) / 10
        for a, b in zip(top10_ref, top10_other, strict=True)
    ]
    return {
        "prompts": int(scores.shape[0]),
        "max_abs_logit_difference": round((scores - reference).abs().max().item(), 4),
        "reference_logit_range": round(reference.abs().max().item(), 4),
        "top1_agreement": float((scores.argmax(-1) == reference.argmax(-1)).float().mean()),
        "top10_overlap": round(statistics.mean(overlap), 3),
        "kl_divergence_at_card_temperature": round(kl.mean().item(), 5),
    }


def contention(load_before: float, cpu_started: float) -> dict:
    """What else ran meanwhile: a shared machine's load slows either way by its own share."""
    return {
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def machine(device: torch.device) -> dict:
    info = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "memory_gib": memory_gib(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def save_report(args, argv, device, model_name, ways, prompt_tokens, gflops) -> dict:
    """The report so far, written to --out: after each way, so a run cut short keeps what it
    measured."""
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "machine": machine(device),
        "model": model_name,
        "students": args.students,
        "subject": args.subject,
        "trimester": args.trimester,
        "new_tokens": args.new_tokens,
        "prompt_tokens": {
            "min": min(prompt_tokens),
            "mean": round(statistics.mean(prompt_tokens), 1),
            "max": max(prompt_tokens),
        }
        if prompt_tokens
        else None,
        "ways": ways,
    }
    if gflops is not None:
        report["linear_gflops"] = {
            "layer": "3072 -> 8192 (Llama-3.2-3B gate_proj/up_proj), best of 5",
            **gflops,
        }
    if "ours" in ways and "ours-batch8" in ways:
        report["one_batch_vs_batches_of_8"] = (
            ways["ours"]["students_per_second"] / ways["ours-batch8"]["students_per_second"]
        )
    if "card" in ways:
        card_speed = ways["card"]["students_per_second"]
        report["ratios"] = {
            name: way["students_per_second"] / card_speed
            for name, way in ways.items()
            if name != "card"
        }
        if "ours" in ways:
            report["ratio"] = report["ratios"]["ours"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=20)
    parser.add_argument(
        "--card-students",
        type=int,
        default=0,
        help="Run the card's way on the first N students only (0: all): it drafts one"
        " student at a time, so its students/second holds for any N, and a class of 35 at"
        " the card's pace would take most of a short GPU lease.",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    parser.add_argument("--tiny", action="store_true", help="The tiny test model (smoke run).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument(
        "--our-dtype",
        default="auto",
        help="APPRECIATION_DTYPE for our way: auto (the default: bf16 on CPU), float32…",
    )
    parser.add_argument(
        "--ways",
        default="card,ours",
        help="Which ways to run, comma-separated: card, ours, ours-no-prefix-cache (ours"
        " without the shared-prefix cache, to measure what it brings), ours-batch8 (batches"
        " of 8, the former CPU default), ours-int8 (int8 weights, CPU). Ratios need card.",
    )
    parser.add_argument(
        "--matmul",
        action="store_true",
        help="Also measure the CPU's own GFLOPS for one 3072x8192 linear layer (bf16, int8)"
        " at 1/8/35/300 rows, in the same run (bench/machine.py).",
    )
    parser.add_argument("--subject", default=SUBJECT, help="The class's subject.")
    parser.add_argument("--trimester", type=int, default=TRIMESTER, choices=(1, 2, 3))
    args = parser.parse_args(argv)
    chosen = args.ways.split(",")
    if unknown := set(chosen) - set(WAYS):
        parser.error(f"unknown ways: {', '.join(sorted(unknown))} (choose from {', '.join(WAYS)})")
    device = resolve_device(args.device)
    if "ours-int8" in chosen and device.type != "cpu":
        parser.error("ours-int8 is for CPUs (APPRECIATION_QUANTIZE=int8)")
    requests = class_of(args.students, subject=args.subject, trimester=args.trimester)

    with tempfile.TemporaryDirectory() as tiny_dir:
        if args.tiny:
            base, adapter = build_test_model(Path(tiny_dir))
            model_name = "tiny test model (random)"
        else:
            base, adapter = build_random_3b(args.model_dir)
            model_name = "Llama-3.2-3B shape, random weights, random LoRA r=16"
        ways = {}
        prompt_tokens: list[int] = []
        gflops = None
        if args.matmul:
            print("The machine's own linear-layer GFLOPS…", flush=True)
            gflops = linear_gflops()
        if "card" in chosen:
            print(f"Card's way: {args.students} students one at a time…", flush=True)
            ways["card"], prompt_tokens = run_card_way(
                base, adapter, requests[: args.card_students or None], args.new_tokens, device
            )
            ways["card"]["students"] = len(prompt_tokens)
            print(f"  {ways['card']['generate_seconds']:.1f} s", flush=True)
            save_report(args, argv, device, model_name, ways, prompt_tokens, gflops)
        reference_scores = None
        for name in WAYS[1:]:
            if name in chosen:
                print(f"{LABELS[name]}…", flush=True)
                ways[name], prompt_tokens, scores = run_our_way(
                    base,
                    adapter,
                    requests,
                    args.new_tokens,
                    device,
                    args.our_dtype,
                    prefix_cache=name != "ours-no-prefix-cache",
                    batch_size=8 if name == "ours-batch8" else 0,
                    quantize="int8" if name == "ours-int8" else "",
                    compare_with=reference_scores if name == "ours-int8" else None,
                    keep_scores=name == "ours" and "ours-int8" in chosen,
                )
                if name == "ours":
                    reference_scores = scores
                print(f"  {ways[name]['generate_seconds']:.1f} s", flush=True)
                save_report(args, argv, device, model_name, ways, prompt_tokens, gflops)

    report = save_report(args, argv, device, model_name, ways, prompt_tokens, gflops)
    for name, way in ways.items():
        print(
            f"{LABELS[name] + ':':34}{way['students_per_second']:.4f} students/s"
            f" ({way['generate_seconds']:.1f} s for {args.students},"
            f" batch {way['batch_size']}, {way['dtype']})"
            + (
                f", {report['ratios'][name]:.2f}x the card's way"
                if name in report.get("ratios", {})
                else ""
            )
        )
    print(f"Results:    {args.out}")
    return report


if __name__ == "__main__":
    main()
