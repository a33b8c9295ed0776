"""The throughput benchmark runs end to end at CI size (its numbers are for docs/performance.md, not asserted)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_ci_run_measures_every_scenario(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "load_tests" / "benchmark.py"), "--size", "ci", "--dtypes", "float32",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    run = report["runs"][0]
    assert run["ceiling"]["tok_s"] > 0 and run["matmul_peak_flop_s"] > 0
    names = [r["scenario"] for r in run["http"]]
    assert any("c=64" in n for n in names) and any("one request" in n for n in names)
    assert any("prompt reuse" in n for n in names) and any("no reuse" in n for n in names)
    assert all(r["tok_s"] > 0 and r["p50_ms"] <= r["p99_ms"] for r in run["http"])
    assert "x ceil" in proc.stdout
