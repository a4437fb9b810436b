"""Smoke run of the SIECLE / STS-web import benchmark on a small school (seconds)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_siecle_benchmark_runs(tmp_path):
    out = tmp_path / "siecle.json"
    result = subprocess.run(
        [
            sys.executable,
            "bench/siecle_import.py",
            "--students",
            "120",
            "--teachers",
            "8",
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
    runs = report["runs"]
    assert runs["siecle_first"]["counts"]["students_created"] == 120
    assert runs["siecle_rerun"]["counts"]["students_unchanged"] == 120
    assert runs["siecle_mid_year"]["counts"]["students_left"] == 3  # students 1, 51, 101
    assert runs["sts_first"]["counts"]["teachers_created"] == 8
    assert "teachers_created" not in runs["sts_rerun"]["counts"]
