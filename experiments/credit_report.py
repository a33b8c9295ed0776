"""Outputs of the credit experiment: raw JSON, the PNG (reward and KL curves with 95% bands), the markdown table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from credit_arms import ARMS
from credit_stats import FINAL_WINDOW, GATE_STEPS_RATIO, SMOOTH_WINDOW, band, trailing_mean



def finite_or_none(value: Any) -> Any:
    """JSON has no inf/NaN: write null (the summary says what null means)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def write_json(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(finite_or_none(results), indent=1, allow_nan=False))
    tmp.replace(path)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_reward, ax_kl) = plt.subplots(1, 2, figsize=(12, 4.5))
    for arm_name, runs in grouped(results["runs"]).items():
        label = f"{ARMS[arm_name].label} (n={len(runs)})"
        for ax, metric in ((ax_reward, "reward"), (ax_kl, "kl")):
            # Each seed's trailing SMOOTH_WINDOW-step mean (what steps-to-target reads), then mean and CI over seeds.
            curves = [trailing_mean(r["curves"][metric], SMOOTH_WINDOW) for r in runs if r["curves"].get(metric)]
            if not curves:
                continue
            stats = band(curves)
            steps = range(1, len(stats["mean"]) + 1)
            line, = ax.plot(steps, stats["mean"], label=label)
            ax.fill_between(steps, stats["low"], stats["high"], color=line.get_color(), alpha=0.18)
    target = results.get("summary", {}).get("target")
    if target is not None:
        ax_reward.axhline(target, color="grey", ls="--", lw=1, label="target (sparse final)")
    ax_reward.set(title=f"RM score of the step's samples ({SMOOTH_WINDOW}-step trailing mean, 95% CI over seeds)",
                  xlabel="GRPO step",
                  ylabel="demo RM score R(x, y)")
    ax_kl.set(title=f"KL to the reference (SFT) policy, TRL's k3 ({SMOOTH_WINDOW}-step trailing mean)",
              xlabel="GRPO step", ylabel="KL per token")
    ax_reward.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def grouped(runs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for run in runs:
        out.setdefault(run["arm"], []).append(run)
    return out


def fmt_ci(pair: list | tuple | None, digits: int = 2) -> str:
    if not pair or pair[0] is None or (isinstance(pair[0], float) and math.isnan(pair[0])):
        return "–"
    mean, half = pair
    if half is None or (isinstance(half, float) and math.isnan(half)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def fmt_seconds(arm: dict) -> str:
    """Mean and range: run times on a shared machine are not normal, a t interval would mislead."""
    low, high = arm.get("seconds_range") or (None, None)
    mean = arm["seconds_per_run"][0]
    return f"{mean:.0f}" if low is None else f"{mean:.0f} ({low:.0f}–{high:.0f})"


def fmt_step(step: float | None) -> str:
    return "–" if step is None or not math.isfinite(step) else f"{step:g}"


def fmt_steps(steps: list) -> str:
    return ", ".join(fmt_step(s) for s in steps)


def table(results: dict) -> str:
    summary = results["summary"]
    n_steps = results["config"]["run"]["steps"]
    lines = [
        f"| arm | seeds | reward, first {FINAL_WINDOW} steps | reward, last {FINAL_WINDOW} steps (95% CI) | "
        "mean reward over all steps (95% CI) | steps to target, per seed | median | reached | "
        f"KL, last {FINAL_WINDOW} steps | length, last {FINAL_WINDOW} steps | s / run | gate |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm_name, arm in summary["arms"].items():
        gate = summary["gate"].get(arm_name)
        verdict = ("reference" if gate is None else "no verdict (< 3 seeds)" if gate["met"] is None
                   else "**met**" if gate["met"] else "not met")
        median = arm["median_steps_to_target"]
        lines.append(
            f"| {ARMS[arm_name].label} | {len(arm['seeds'])} | {fmt_ci(arm['start_reward'])} | "
            f"{fmt_ci(arm['final_reward'])} | {fmt_ci(arm.get('area_under_curve'))} | "
            f"{fmt_steps(arm['steps_to_target'])} | "
            f"{fmt_step(median)} | {fmt_step(arm.get('mean_curve_steps_to_target'))} | "
            f"{arm['reached_target']}/{len(arm['seeds'])} | {fmt_ci(arm['final_kl'])} | "
            f"{fmt_ci(arm.get('final_length'), 1)} | "
            f"{fmt_seconds(arm)} | {verdict} |"
        )
    lines += [
        "",
        f"Target = {summary['target']:.3f}, the sparse arm's mean reward over its last {FINAL_WINDOW} of {n_steps} "
        f"steps. Steps to target = first step whose trailing {SMOOTH_WINDOW}-step mean reaches it (– = never). "
        f"Gate: median steps-to-target ≤ {GATE_STEPS_RATIO}× sparse's, or a better final reward with a 95% CI that "
        "does not overlap sparse's.",
    ]
    return "\n".join(lines)


def samples_markdown(results: dict) -> str:
    """A few generations per arm (seed of the first run) at the first and the last step."""
    lines = []
    seen = set()
    for run in results["runs"]:
        if run["arm"] in seen:
            continue
        seen.add(run["arm"])
        lines.append(f"**{ARMS[run['arm']].label}**, seed {run['seed']}:\n")
        for when in ("start", "end"):
            for sample in run["samples"].get(when, []):
                lines.append(f"- {when}: `{sample['prompt']}` → “{sample['completion']}” (score {sample['score']:+.2f})")
        lines.append("")
    return "\n".join(lines)


def update_doc(doc: Path, block: str, name: str = "credit-results") -> None:
    """Replace the generated block between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``doc`` (the prose
    around it is written by hand)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = doc.read_text()
    if start not in text or end not in text:
        raise ValueError(f"{doc} has no {start} … {end} block to update")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{start}\n{block}\n{end}{tail}")
