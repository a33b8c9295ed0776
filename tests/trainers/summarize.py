"""What each real trainer logged, from the reports tests/trainers keeps when asked:

    R3HF_TRAINER_REPORT_DIR=/tmp/trainer-reports .venv/bin/python -m pytest tests/trainers/test_trl.py \\
        tests/trainers/test_reward_paths.py
    .venv/bin/python tests/trainers/summarize.py /tmp/trainer-reports

Prints one table (rewards per step or per sample; for dense paths the largest |row sum - (score - prompt_score)|,
or - score for the uniform run) and then the same as JSON.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def trl_rows(report: dict) -> list[dict]:
    rows = []
    for run, body in report.items():
        if not isinstance(body, dict) or "log" not in body:
            continue
        row = {"trainer": "TRL 1.16.0", "run": run,
               "reward per step": [round(entry["reward"], 4) for entry in body["log"]]}
        if "dense_steps" in body:
            uniform = bool(body["options"])
            gaps = [abs(total - (score - (0.0 if uniform else prompt)))
                    for step in body["dense_steps"]
                    for total, score, prompt in zip(step["row_sums"], step["scores"], step["prompt_scores"])]
            row["max |row sum - target|"] = max(gaps)
            row["advantages shape"] = [step["advantages_shape"] for step in body["dense_steps"]]
            row["aligned"] = f"{sum(sum(s['aligned']) for s in body['dense_steps'])}/" \
                             f"{sum(len(s['aligned']) for s in body['dense_steps'])}"
        rows.append(row)
    return rows


def openrlhf_rows(report: dict) -> list[dict]:
    return [{"trainer": "OpenRLHF 0.11.2", "run": f"SingleTurnAgentExecutor, {mode}",
             "reward per sample": [round(s["reward"], 4) for s in report[mode]]} for mode in ("http", "python_file")]


def verl_rows(report: dict) -> list[dict]:
    rows = []
    for name in ("compute_score_file", "compute_score_pkg", "dense_manager_file", "dense_manager_pkg"):
        run = report[name]
        row = {"trainer": "verl 0.9.1", "run": f"{name} ({run['manager_class']})",
               "rm_scores row sums": [round(math.fsum(r), 4) for r in run["rm_scores"]]}
        info = run["reward_extra_info"]
        if "r3hf_score" in info:
            row["max |row sum - target|"] = max(
                abs(math.fsum(r) - (s - p)) for r, s, p in zip(run["rm_scores"], info["r3hf_score"],
                                                             info["r3hf_prompt_score"]))
            row["nonzero columns"] = [sum(1 for v in r if v != 0) for r in run["rm_scores"]]
            row["valid lengths"] = run["valid_lengths"]
        rows.append(row)
    return rows


def main() -> None:
    folder = Path(sys.argv[1])
    load = lambda name: json.loads((folder / f"{name}.json").read_text())  # noqa: E731
    rows = trl_rows(load("trl_grpo")) + openrlhf_rows(load("openrlhf_executor")) + verl_rows(load("verl_reward_loop"))
    areal = load("areal_wrapper")
    rows.append({"trainer": "AReaL 1.0.4", "run": "AsyncRewardWrapper(reward_fn)",
                 "reward per sample": [round(r, 4) for r in areal["rewards"]]})
    for row in rows:
        print(" | ".join(f"{k}: {v}" for k, v in row.items()))
    seconds = {name: round(load(name)["seconds"], 1)
               for name in ("trl_grpo", "openrlhf_executor", "verl_reward_loop", "areal_wrapper")}
    print("driver seconds:", seconds)
    print(json.dumps({"rows": rows, "driver_seconds": seconds}))


if __name__ == "__main__":
    main()
