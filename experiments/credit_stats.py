"""Aggregation of the credit experiment's per-step numbers: curves with 95% CIs, steps-to-target, the gate.

Pure numpy (no torch), so the report can be rebuilt from the raw JSON alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Two-sided 95% Student-t quantiles by degrees of freedom (seeds - 1); beyond the table the normal 1.96.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}
FINAL_WINDOW = 5  # the "final reward" of a run = mean of its last FINAL_WINDOW steps (one step is 32 samples)
SMOOTH_WINDOW = 5  # steps-to-target reads a trailing moving average, so one lucky batch does not count
GATE_STEPS_RATIO = 0.8
GATE_MIN_SEEDS = 3  # fewer seeds per arm: the numbers are shown, but no verdict is given


def t975(df: int) -> float:
    if df <= 0:
        return float("nan")
    known = [d for d in _T975 if d <= df]
    return _T975[max(known)] if df <= 30 else 1.96


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t interval); half-width NaN for a single value."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan")
    if arr.size == 1:
        return float(arr[0]), float("nan")
    return float(arr.mean()), float(t975(arr.size - 1) * arr.std(ddof=1) / math.sqrt(arr.size))


def trailing_mean(curve: Sequence[float], window: int) -> np.ndarray:
    arr = np.asarray(curve, dtype=float)
    cumsum = np.concatenate([[0.0], np.cumsum(arr)])
    out = np.empty_like(arr)
    for i in range(arr.size):
        lo = max(0, i + 1 - window)
        out[i] = (cumsum[i + 1] - cumsum[lo]) / (i + 1 - lo)
    return out


def final_value(curve: Sequence[float], window: int = FINAL_WINDOW) -> float:
    return float(np.mean(np.asarray(curve, dtype=float)[-window:]))


def steps_to_target(curve: Sequence[float], target: float, window: int = SMOOTH_WINDOW) -> float:
    """First step (1-based) whose trailing mean reaches ``target``; inf if it never does."""
    hits = np.nonzero(trailing_mean(curve, window) >= target)[0]
    return float(hits[0] + 1) if hits.size else math.inf


def band(curves: Sequence[Sequence[float]]) -> dict[str, list[float]]:
    """Per-step mean and 95% CI bounds across seeds (curves cut to the shortest)."""
    length = min(len(c) for c in curves)
    matrix = np.asarray([list(c)[:length] for c in curves], dtype=float)
    means, halves = zip(*(mean_ci(matrix[:, i]) for i in range(length)))
    means, halves = np.asarray(means), np.nan_to_num(np.asarray(halves))
    return {"mean": means.tolist(), "low": (means - halves).tolist(), "high": (means + halves).tolist()}


def summarise(runs_by_arm: dict[str, list[dict]], reference_arm: str = "sparse") -> dict:
    """Per arm: final reward (mean, CI), steps-to-target per seed and median, final KL, seconds; and the gate."""
    reference = [final_value(r["curves"]["reward"]) for r in runs_by_arm[reference_arm]]
    target = float(np.mean(reference))
    arms = {}
    for arm, runs in runs_by_arm.items():
        finals = [final_value(r["curves"]["reward"]) for r in runs]
        starts = [float(np.mean(r["curves"]["reward"][:FINAL_WINDOW])) for r in runs]
        kls = [final_value(r["curves"]["kl"]) for r in runs if r["curves"].get("kl")]
        lengths = [final_value(r["curves"]["completion_length"]) for r in runs if r["curves"].get("completion_length")]
        steps = [steps_to_target(r["curves"]["reward"], target) for r in runs]
        arms[arm] = {
            "seeds": [r["seed"] for r in runs],
            "start_reward": mean_ci(starts),
            "final_reward": mean_ci(finals),
            "area_under_curve": mean_ci([float(np.mean(r["curves"]["reward"])) for r in runs]),
            "final_kl": mean_ci(kls),
            "final_length": mean_ci(lengths),
            "steps_to_target": steps,
            "median_steps_to_target": float(np.median(steps)) if steps else float("nan"),
            # The same read on the seed-averaged curve: one number, less at the mercy of one slow seed.
            "mean_curve_steps_to_target": steps_to_target(band([r["curves"]["reward"] for r in runs])["mean"], target),
            "reached_target": sum(math.isfinite(s) for s in steps),
            "seconds_total": float(sum(r["seconds"] for r in runs)),
            "seconds_per_run": mean_ci([r["seconds"] for r in runs]),
            "seconds_range": (min(r["seconds"] for r in runs), max(r["seconds"] for r in runs)),
        }
    return {"target": target, "reference_arm": reference_arm, "arms": arms,
            "gate": {arm: gate(arms[arm], arms[reference_arm]) for arm in arms if arm != reference_arm}}


def gate(candidate: dict, reference: dict) -> dict:
    """The issue's gate: median steps-to-target <= 0.8x the reference's, or a better final reward whose 95% CI
    does not overlap the reference's."""
    ref_steps, cand_steps = reference["median_steps_to_target"], candidate["median_steps_to_target"]
    faster = math.isfinite(cand_steps) and cand_steps <= GATE_STEPS_RATIO * ref_steps
    (c_mean, c_half), (r_mean, r_half) = candidate["final_reward"], reference["final_reward"]
    separated = (not math.isnan(c_half) and not math.isnan(r_half)) and c_mean - c_half > r_mean + r_half
    enough = min(len(candidate.get("seeds", ())), len(reference.get("seeds", ()))) >= GATE_MIN_SEEDS
    return {"faster": bool(faster), "better_final_non_overlapping": bool(separated),
            "met": bool(faster or separated) if enough else None,
            "steps_ratio": cand_steps / ref_steps if ref_steps and math.isfinite(cand_steps) else math.inf}
