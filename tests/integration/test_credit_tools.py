"""The credit tools on the real demo model: the README's `r3hf explain` line, and the credit-quality evaluation."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_explain_example_runs_in_process_and_credits_the_rated_word():
    line = next(l for l in (ROOT / "README.md").read_text().splitlines() if l.startswith(".venv/bin/r3hf explain --prompt"))
    args = re.findall(r'"([^"]*)"', line.split("#")[0])
    proc = subprocess.run(
        [sys.executable, "-m", "r3hf_server", "explain", "--prompt", args[0], "--response", args[1], "--json"],
        capture_output=True, text=True, timeout=300,  # in-process model load on a loaded CI box
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    best = max(range(len(result["token_rewards"])), key=lambda i: result["token_rewards"][i])
    assert "wonder" in result["tokens"][best]
    assert sum(result["token_rewards"]) == pytest.approx(result["score"] - result["prompt_score"])


def test_the_credit_evaluation_ranks_r3hf_above_uniform_and_sparse_on_a_subset(tmp_path):
    out = tmp_path / "credit.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "eval_credit.py"), "--words", "150", "--per-word", "2",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    table = json.loads(out.read_text())["spearman"]
    multi = "text, 2-3 words"
    assert table["r3hf"][multi] >= 0.6
    assert table["r3hf"][multi] > table["uniform"][multi] and table["r3hf"][multi] > table["attention"][multi]
    assert "| r3hf |" in proc.stdout
