"""A CI-sized run of load_tests/run_load_test.py: locust against a server it starts on 127.0.0.1, a few seconds long."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "load_tests/run_load_test.py"
SCENARIOS = ("single item /token_rewards", "batch of 16 /score", "GRPO group of 8 /token_rewards")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def locust_installed():
    if (ROOT / ".venv-tools/bin/locust").exists() or shutil.which("locust"):
        return
    reason = "locust is not installed; run: bash scripts/setup_deploy_tools.sh"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI runs the load test)")
    pytest.skip(reason)


def run_load_test(tmp_path: Path, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    summary = tmp_path / "summary.json"
    result = subprocess.run(
        [sys.executable, str(RUNNER), "--users", "3", "--run-time", "5", "--json", str(summary), *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )
    return result, json.loads(summary.read_text()) if summary.exists() else {}


def test_demo_model_serves_every_scenario_without_a_failure(tmp_path):
    result, summary = run_load_test(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {row["scenario"]: row for row in summary["clients"]}
    for scenario in SCENARIOS:
        assert rows[scenario]["requests"] > 0 and rows[scenario]["failures"] == 0, scenario
        assert 0 < rows[scenario]["p50_ms"] <= rows[scenario]["p95_ms"] <= rows[scenario]["p99_ms"]
        split = summary["server"][scenario]
        assert split["x-inference-time"]["p50"] > 0 and split["x-total-time"]["p50"] > 0
    assert summary["throughput"]["items_per_s"] > 0 and summary["throughput"]["tokens_per_s"] > 0
    for label in ("p50 ms", "p95 ms", "p99 ms", "req/s", "items/s", "queue", "forward"):
        assert label in result.stdout


def test_a_failing_request_fails_the_run(tmp_path):
    # a server that refuses requests of more than 4 items: every /score batch of 16 gets a 413
    result, summary = run_load_test(tmp_path, "--runner", "fake", env={"R3HF_MAX_ITEMS_PER_REQUEST": "4"})
    assert result.returncode == 1 and "FAILED" in result.stderr
    rows = {row["scenario"]: row for row in summary["clients"]}
    assert rows["batch of 16 /score"]["failures"] == rows["batch of 16 /score"]["requests"] > 0


def test_the_bounds_are_enforced():
    result = subprocess.run([sys.executable, str(RUNNER), "--users", "1000"], capture_output=True, text=True)
    assert result.returncode == 2 and "--users must be in" in result.stderr
