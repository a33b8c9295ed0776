"""The credit experiment's --quick mode end to end: SFT policy, `r3hf serve`, TRL GRPOTrainer for every arm, the
outputs. It checks that the pipeline runs and that its outputs have the right shape, never the experiment's claim."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARMS = ["sparse", "r3hf", "r3hf_beta0.5", "uniform", "attention"]
QUICK_TIMEOUT_S = 600  # ~1-3 min on a quiet 2-core machine (SFT of the quick policy included)

pytestmark = pytest.mark.slow


def test_quick_mode_runs_every_arm_and_writes_the_outputs(trainers_python: Path, tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("# title\n<!-- credit-results:start -->\nold\n<!-- credit-results:end -->\ntail\n")
    proc = subprocess.Popen(
        [str(trainers_python), "experiments/credit_experiment.py", "--quick", "--out", str(tmp_path),
         "--update-doc", str(doc)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _, stderr = proc.communicate(timeout=QUICK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the script unwinds and stops the server it started (SIGKILL would orphan it)
        _, stderr = proc.communicate(timeout=60)
        pytest.fail(f"--quick did not finish in {QUICK_TIMEOUT_S}s: {stderr[-2000:]}")
    assert proc.returncode == 0, stderr[-3000:]

    results = json.loads((tmp_path / "credit.json").read_text())
    steps = results["config"]["run"]["steps"]
    assert results["config"]["arms"] == ARMS and results["config"]["seeds"] == [0]
    assert [(r["arm"], r["seed"]) for r in results["runs"]] == [(arm, 0) for arm in ARMS]
    for run in results["runs"]:
        for metric in ("reward", "kl", "completion_length"):
            curve = run["curves"][metric]
            assert len(curve) == steps and all(isinstance(v, float) and math.isfinite(v) for v in curve), (run["arm"], metric)
        assert run["seconds"] > 0
        for when in ("start", "end"):
            assert run["samples"][when] and all(isinstance(s["completion"], str) for s in run["samples"][when])
    # Same seed, same policy: every arm's first batch is the same generations, given the same score by the server
    # (through /score for sparse, /token_rewards for the dense arms).
    first = [run["samples"]["start"] for run in results["runs"]]
    for batch in first[1:]:
        assert [(s["prompt"], s["completion"]) for s in batch] == [(s["prompt"], s["completion"]) for s in first[0]]
        assert [s["score"] for s in batch] == pytest.approx([s["score"] for s in first[0]], abs=2e-3)

    summary = results["summary"]
    assert set(summary["arms"]) == set(ARMS) and set(summary["gate"]) == set(ARMS) - {"sparse"}
    assert all(len(arm["steps_to_target"]) == 1 for arm in summary["arms"].values())

    png = (tmp_path / "credit.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    table = (tmp_path / "credit.md").read_text()
    assert sum(line.startswith("| (") for line in table.splitlines()) == len(ARMS)
    updated = doc.read_text()
    assert "old" not in updated and updated.startswith("# title\n") and updated.endswith("tail\n")
    assert "| (a) sparse GRPO |" in updated
