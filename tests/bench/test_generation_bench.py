"""Smoke runs of the generation benchmarks on the tiny test model (seconds, not minutes)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_runs_both_ways_on_the_tiny_model(tmp_path):
    out = tmp_path / "generation.json"
    result = subprocess.run(
        [
            sys.executable,
            "bench/generation.py",
            "--tiny",
            "--students",
            "3",
            "--new-tokens",
            "4",
            "--device",
            "cpu",
            "--ways",
            "card,ours,ours-no-prefix-cache",
            "--out",
            str(out),
        ],  # fmt: skip
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report["ways"]) == {"card", "ours", "ours-no-prefix-cache"}
    card, ours = report["ways"]["card"], report["ways"]["ours"]
    plain = report["ways"]["ours-no-prefix-cache"]
    assert (card["dtype"], card["merged"], card["batch_size"]) == ("float16", False, 1)
    from worker.backends.transformers import cpu_has_native_bf16

    # Our way takes the platform's automatic dtype: never float16 on a CPU.
    expected = "bfloat16" if cpu_has_native_bf16() else "float32"
    assert (ours["dtype"], ours["merged"]) == (expected, True)
    # Same work on both sides: every student got exactly --new-tokens tokens.
    assert card["new_tokens_total"] == ours["new_tokens_total"] == plain["new_tokens_total"] == 12
    assert card["students_per_second"] > 0 and ours["students_per_second"] > 0
    # One class, one subject: its shared prompt prefix is computed once, or not at all.
    assert ours["prefix_cache"]["enabled"] and ours["prefix_cache"]["computed"] == 1
    assert ours["prefix_cache"]["tokens_saved"] > 0
    assert not plain["prefix_cache"]["enabled"] and plain["prefix_cache"]["computed"] == 0
    assert report["ratio"] == report["ratios"]["ours"] > 0
    assert set(report["ratios"]) == {"ours", "ours-no-prefix-cache"}
    assert (report["students"], report["subject"], report["trimester"]) == (
        3,
        "Histoire-Géographie",
        2,
    )
    assert "x the card's way" in result.stdout


def test_benchmark_refuses_an_unknown_way(tmp_path):
    result = subprocess.run(
        [sys.executable, "bench/generation.py", "--tiny", "--ways", "card,fastest"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown ways: fastest" in result.stderr


def run_bench(tmp_path, *args, script="bench/generation.py"):
    result = subprocess.run(
        [sys.executable, script, "--tiny", "--device", "cpu", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_a_class_in_one_batch_against_batches_of_8_and_int8(tmp_path):
    out = tmp_path / "class.json"
    run_bench(
        tmp_path,
        "--students", "10",
        "--new-tokens", "5",
        "--ways", "card,ours,ours-batch8,ours-int8",
        "--card-students", "2",
        "--out", str(out),
    )  # fmt: skip
    report = json.loads(out.read_text(encoding="utf-8"))
    ways = report["ways"]
    # The card's way on 2 students only; its students/second is what the ratios use.
    assert ways["card"]["students"] == 2 and ways["card"]["new_tokens_total"] == 10
    assert ways["ours"]["batch_size"] == 10  # the whole class
    assert ways["ours-batch8"]["batch_size"] == 8
    assert ways["ours-int8"]["quantize"] == "int8" and ways["ours-int8"]["dtype"] == "float32"
    for name, batches in (("ours", 1), ("ours-batch8", 2), ("ours-int8", 1)):
        time = ways[name]["time"]
        assert ways[name]["new_tokens_total"] == 50
        assert time["batches"] == batches == len(time["prefill_seconds"])
        assert time["decode_steps"] == batches * 4  # the first token comes with the prefill
        assert 0 < time["max_quiet_seconds"] <= ways[name]["generate_seconds"]
        assert time["first_draft_seconds"] is not None
    versus = ways["ours-int8"]["versus_default_dtype"]
    assert versus["prompts"] == 4 and 0 <= versus["top1_agreement"] <= 1
    assert versus["max_abs_logit_difference"] > 0
    assert report["one_batch_vs_batches_of_8"] > 0
    assert set(report["ratios"]) == {"ours", "ours-batch8", "ours-int8"}


def test_time_breakdown_splits_prefill_steps_and_the_rest():
    from bench.generation import time_breakdown

    events = [
        (2.0, "step", 1),
        (2.5, "step", 2),
        (2.7, "result", 0),
        (3.0, "step", 3),
        (5.0, "step", 1),  # a second batch: its prefill took 2 s
        (5.5, "step", 2),
        (6.0, "step", 3),
    ]
    breakdown = time_breakdown(events, 6.5)
    assert breakdown["batches"] == 2
    assert breakdown["prefill_seconds"] == [2.0, 2.0]
    assert breakdown["decode_steps"] == 4
    assert breakdown["decode_seconds"] == 2.0
    assert breakdown["rest_seconds"] == 0.5
    assert breakdown["max_quiet_seconds"] == 2.0
    assert breakdown["first_draft_seconds"] == 2.7
    assert breakdown["decode_step_seconds"]["mean"] == 0.5


def test_time_breakdown_counts_prefill_chunks_in_the_prefill():
    from bench.generation import time_breakdown

    events = [
        (1.0, "prefill", 1),
        (2.0, "prefill", 2),  # 2 chunks of rows: the bar moved after 1 s
        (3.0, "step", 3),  # the first token: the prefill took 3 s
        (3.5, "step", 4),
        (4.0, "step", 5),
    ]
    breakdown = time_breakdown(events, 4.0)
    assert breakdown["batches"] == 1
    assert breakdown["prefill_seconds"] == [3.0]
    assert (breakdown["decode_steps"], breakdown["decode_seconds"]) == (2, 1.0)
    assert breakdown["max_quiet_seconds"] == 1.0


def test_the_matmul_measure_covers_bf16_and_int8():
    from bench.machine import LINEAR_ROWS, linear_gflops

    figures = linear_gflops(kinds=("bfloat16", "int8-dynamic", "int8-weight-only"), repeat=1)
    assert set(figures) == {"bfloat16", "int8-dynamic", "int8-weight-only"}
    for kind in figures.values():
        assert set(kind) == {str(rows) for rows in LINEAR_ROWS}
        assert all(value > 0 for value in kind.values())


def test_the_gpu_script_runs_every_part_on_the_tiny_model(tmp_path):
    out = tmp_path / "gpu"
    run_bench(
        tmp_path,
        "--students", "3",
        "--new-tokens", "4",
        "--card-students", "1",
        "--peak-classes", "2",
        "--out", str(out),
        script="bench/gpu.py",
    )  # fmt: skip
    report = json.loads((out / "gpu.json").read_text(encoding="utf-8"))
    parts = report["parts"]
    assert set(parts) == {"class", "static-cache", "memory", "vllm"}
    assert all("error" not in part for part in parts.values()), parts
    assert parts["class"]["batch_size"] == 3 and parts["class"]["ratio"] > 0
    assert (out / "generation-class.json").exists()
    assert parts["static-cache"]["static_seconds"] > 0
    # No GPU here: the memory check says so; vLLM is measured where it imports.
    assert "skipped" in parts["memory"]
    assert "skipped" in parts["vllm"] or parts["vllm"]["class"]["students"] == 3
