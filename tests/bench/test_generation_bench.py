"""Smoke run of the generation benchmark on the tiny test model (seconds, not minutes)."""

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
