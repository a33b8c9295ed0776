"""Statistics of the credit experiment (experiments/credit_stats.py): CIs, steps-to-target and the gate."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))

from credit_stats import band, gate, mean_ci, steps_to_target, summarise, trailing_mean  # noqa: E402


def test_mean_ci_uses_the_t_quantile() -> None:
    mean, half = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0
    assert half == pytest.approx(2.776 * math.sqrt(2.5) / math.sqrt(5))
    assert math.isnan(mean_ci([7.0])[1])


def test_steps_to_target_reads_the_trailing_mean_not_one_lucky_step() -> None:
    curve = [0, 0, 0, 10, 0, 0, 1, 1, 1, 1, 1]
    assert trailing_mean(curve, 5)[3] == pytest.approx(2.5)
    assert steps_to_target(curve, 2.0, window=5) == 4  # (0+0+0+10)/4 = 2.5 at step 4
    assert steps_to_target(curve, 3.0, window=5) == math.inf
    assert steps_to_target(curve, 1.0, window=1) == 4


def test_band_is_mean_plus_minus_ci_per_step() -> None:
    out = band([[0.0, 1.0], [2.0, 3.0]])
    assert out["mean"] == [1.0, 2.0]
    assert out["low"][0] == pytest.approx(1.0 - 12.706 * math.sqrt(2) / math.sqrt(2))


def runs(finals: list[float], slope: float) -> list[dict]:
    return [{"seed": s, "seconds": 1.0, "curves": {"reward": [slope * t + f - slope * 19 for t in range(20)], "kl": [0.1] * 20}}
            for s, f in enumerate(finals)]


def test_gate_faster_or_separated() -> None:
    summary = summarise({"sparse": runs([1.0, 1.1, 0.9], 0.05), "fast": runs([2.0, 2.1, 1.9], 0.2),
                         "same": runs([1.0, 1.1, 0.9], 0.05)})
    assert summary["target"] == pytest.approx(1.0 - 0.05 * 2)  # mean of the last 5 steps of sparse
    assert summary["gate"]["fast"]["met"] and summary["gate"]["fast"]["better_final_non_overlapping"]
    assert not summary["gate"]["same"]["met"]
    assert summary["arms"]["fast"]["median_steps_to_target"] < summary["arms"]["sparse"]["median_steps_to_target"]


def test_gate_never_reached_is_not_met() -> None:
    reference = {"seeds": [0, 1, 2], "median_steps_to_target": 30.0, "final_reward": (1.0, 0.1)}
    never = {"seeds": [0, 1, 2], "median_steps_to_target": math.inf, "final_reward": (0.5, 0.1)}
    assert gate(never, reference) == {"faster": False, "better_final_non_overlapping": False, "met": False,
                                      "steps_ratio": math.inf}


def test_gate_gives_no_verdict_on_fewer_than_three_seeds() -> None:
    reference = {"seeds": [0], "median_steps_to_target": 40.0, "final_reward": (1.0, math.nan)}
    faster = {"seeds": [0], "median_steps_to_target": 20.0, "final_reward": (2.0, math.nan)}
    verdict = gate(faster, reference)
    assert verdict["faster"] and verdict["met"] is None
