"""Does R3HF dense credit train a policy faster than the sparse score? GRPO (TRL) on a tiny policy, demo RM served.

Runs every arm (sparse; R3HF at beta 1.0 and 0.5; uniform; attention) for the same seeds, steps and batch, against
one `r3hf serve` of the embedded demo RM on an ephemeral 127.0.0.1 port, and writes the raw per-step numbers (JSON),
the reward/KL curves with 95% bands (PNG) and the results table (markdown; optionally into docs/experiments.md).

    .venv-trainers/bin/python experiments/credit_experiment.py                 # full run (5 seeds x 5 arms)
    .venv-trainers/bin/python experiments/credit_experiment.py --quick         # smoke test of the whole path

Runs are ordered seed-major (every arm for seed 0, then seed 1, ...), and the JSON is rewritten after each run, so an
interrupted run still leaves balanced, usable numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path.insert(0, str(HERE))
try:  # the thin client; from the checkout when the venv has no install of it
    import r3hf_client  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO_ROOT / "client"))

from credit_arms import ARMS  # noqa: E402
from credit_policy import SERVER_PYTHON, PolicySpec, ensure_policy  # noqa: E402
from credit_report import grouped, plot, samples_markdown, table, update_doc, write_json  # noqa: E402
from credit_runs import RunConfig, run_one  # noqa: E402
from credit_server import served_demo_rm  # noqa: E402
from credit_stats import summarise  # noqa: E402

QUICK_RUN = RunConfig(steps=3, prompts_per_step=2, generations=4, max_completion_length=16)
QUICK_POLICY = PolicySpec(sft_examples=1500, sft_steps=60)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 seed, 3 steps, small batch and SFT: a smoke test")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {','.join(ARMS)}")
    p.add_argument("--steps", type=int, default=RunConfig.steps)
    p.add_argument("--learning-rate", type=float, default=RunConfig.learning_rate)
    p.add_argument("--max-completion-length", type=int, default=RunConfig.max_completion_length)
    p.add_argument("--threads", type=int, default=1, help="torch threads for the trainer and for the server each")
    p.add_argument("--out", type=Path, default=HERE / "results" / "credit",
                   help="directory for credit.json, credit.png, credit.md")
    p.add_argument("--update-doc", type=Path, default=None,
                   help="also rewrite the generated block of this markdown file (docs/experiments.md)")
    p.add_argument("--doc-block", default="credit-results",
                   help="name of the generated block in --update-doc: <!-- NAME:start --> ... <!-- NAME:end -->")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild the PNG and tables from --out/credit.json without training")
    p.add_argument("--server-python", type=Path, default=SERVER_PYTHON, help="python of the server venv")
    args = p.parse_args(argv)
    unknown = set(args.arms.split(",")) - set(ARMS)
    if unknown:
        p.error(f"unknown arms {sorted(unknown)}; choose from {','.join(ARMS)}")
    return args


def configs(args) -> tuple[RunConfig, PolicySpec, list[int]]:
    if args.quick:
        return replace(QUICK_RUN, threads=args.threads), QUICK_POLICY, [args.first_seed]
    run = RunConfig(steps=args.steps, learning_rate=args.learning_rate,
                    max_completion_length=args.max_completion_length, threads=args.threads)
    return run, PolicySpec(), list(range(args.first_seed, args.first_seed + args.seeds))


def environment() -> dict:
    import torch
    import transformers
    import trl

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "trl": trl.__version__, "cpus": os.cpu_count(), "load_average_at_start": list(os.getloadavg())}


def write_outputs(results: dict, args) -> None:
    """Summary, JSON, PNG and markdown (and the doc block) from the runs in ``results``."""
    arm_names = results["config"]["arms"]
    results["summary"] = summarise(grouped(results["runs"]), reference_arm=arm_names[0])
    json_path, png_path, md_path = args.out / "credit.json", args.out / "credit.png", args.out / "credit.md"
    write_json(results, json_path)
    plot(results, png_path)
    block = f"{table(results)}\n\nReproduce: `{results['command']}`\n\n{samples_markdown(results)}"
    md_path.write_text(block + "\n")
    if args.update_doc:
        update_doc(args.update_doc, block, args.doc_block)
    print(table(results))
    print(f"\nwrote {json_path}, {png_path}, {md_path}")


def exit_on_sigterm(signum, frame) -> None:
    """SIGTERM unwinds like Ctrl-C, so the served RM is stopped and the runs done so far stay written."""
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    args = parse_args(argv)
    if args.report_only:
        write_outputs(json.loads((args.out / "credit.json").read_text()), args)
        return 0
    run_config, policy_spec, seeds = configs(args)
    arms = [ARMS[name] for name in args.arms.split(",")]
    started = time.time()
    policy = ensure_policy(policy_spec, args.server_python, args.threads)
    results = {
        "command": " ".join([".venv-trainers/bin/python", "experiments/credit_experiment.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "config": {"run": run_config.as_dict(), "policy": asdict(policy_spec), "seeds": seeds,
                   "arms": [a.name for a in arms]},
        "environment": environment(),
        "runs": [],
    }
    json_path = args.out / "credit.json"
    with served_demo_rm(args.server_python, args.threads) as base_url, tempfile.TemporaryDirectory() as work:
        for seed in seeds:
            for arm in arms:
                record = run_one(arm, seed, run_config, base_url, policy, Path(work))
                results["runs"].append(asdict(record))
                print(f"[{time.time() - started:6.0f}s] {arm.name:<13} seed {seed}: reward "
                      f"{record.curves['reward'][0]:+.2f} -> {record.curves['reward'][-1]:+.2f} "
                      f"in {record.seconds:.0f}s", flush=True)
                write_json(results, json_path)
    results["environment"]["load_average_at_end"] = list(os.getloadavg())
    results["wall_seconds"] = round(time.time() - started, 1)
    write_outputs(results, args)
    print(f"total {results['wall_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
