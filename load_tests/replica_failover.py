"""Client-side replicas under failure: one job over two `r3hf serve` replicas while one dies, drains or is slow.

    .venv/bin/python load_tests/replica_failover.py                    # every scenario, the issue's job shape
    .venv/bin/python load_tests/replica_failover.py --scenarios single,kill --repeat 3 --json failover.json

The job is one ``RewardClient.token_rewards`` call of --items items (chunk_size 64, max_concurrency 4, deadline
300 s by default) against replicas started here on 127.0.0.1 (the embedded demo model). Scenarios:

- single:   one healthy replica alone: the reference time and the reference answers;
- kill:     two replicas, replica A SIGKILLed --fault-after-s into the job (a pod OOM-killed);
- term:     two replicas, replica A SIGTERMed --fault-after-s into the job (drains, answers 503 not_ready, exits);
- slow:     two replicas, replica A --slowdown times slower (every forward followed by a pause, fault-injecting
            runner of tests/fault_runner.py);
- all-down: both replicas down when the job starts, replica B started --fault-after-s later.

Prints a table and JSON: wall time (the median of --repeat runs, each run listed), its ratio to `single`'s median,
the largest |difference| from the reference answers (the first `single` run), and which replica answered how many
chunks (the client's own count, per run). Each replica is a fresh process per run, limited to one torch thread
(OMP_NUM_THREADS=1, like a pod with one core); every process started here is stopped on exit.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from replica_fleet import ReplicaProcess, job_items, max_abs_difference  # noqa: E402

from r3hf_client import RewardClient  # noqa: E402

SCENARIOS = ("single", "kill", "term", "slow", "all-down")


def run_job(client: RewardClient, items: list[dict]) -> tuple[float, object, str]:
    started = time.monotonic()
    try:
        out = client.token_rewards(items)
    except Exception as exc:  # the failure is the measurement: report it, do not crash the table
        return time.monotonic() - started, None, f"{type(exc).__name__}: {str(exc)[:300]}"
    return time.monotonic() - started, out, ""


def chunk_split(client: RewardClient, names: dict[str, str]) -> dict[str, int]:
    """Chunks each replica answered, from the client's routing statistics (absent in clients without them)."""
    stats = getattr(client, "replica_stats", None)
    if stats is None:
        return {}
    return {names[url]: s.answered for url, s in stats().items()}


def run_rounds(names: list[str], args: argparse.Namespace, log_dir: Path) -> dict[str, list[dict]]:
    """``args.repeat`` rounds of every scenario, interleaved (single, kill, ..., single, kill, ...) so that a
    machine getting busier over the run slows every scenario alike; the first single run is the reference."""
    runs: dict[str, list[dict]] = {name: [] for name in names}
    reference = None
    for _ in range(args.repeat):
        for name in names:
            runs[name].append(scenario(name, args, log_dir, reference))
            if reference is None:
                reference = runs[name][0]["output"]
    return runs


def summarize(name: str, runs: list[dict]) -> dict:
    """The median wall time of a scenario's runs, and every run's figures."""
    walls = [run["wall_s"] for run in runs]
    diffs = [run["max_abs_diff"] for run in runs if "max_abs_diff" in run]
    return {"scenario": name, "wall_s": round(statistics.median(walls), 2), "runs_s": walls,
            "answered": min(run["answered"] for run in runs), "errors": [run["error"] for run in runs if run["error"]],
            "chunks_by_replica": [run["chunks_by_replica"] for run in runs],
            "max_abs_diff": max(diffs) if diffs else None}


def scenario(name: str, args: argparse.Namespace, log_dir: Path, reference) -> dict:  # type: ignore[no-untyped-def]
    serve_args = ["--max-batch-tokens", str(args.max_batch_tokens)]
    a = ReplicaProcess(serve_args, slowdown=args.slowdown if name == "slow" else 1.0, log_dir=log_dir, name="A")
    b = ReplicaProcess(serve_args, log_dir=log_dir, name="B")
    replicas = [b] if name == "single" else [a, b]
    try:
        if name != "all-down":
            for replica in replicas:
                replica.start()
            for replica in replicas:
                replica.wait_ready()
        fault = {"kill": a.kill, "term": a.terminate, "all-down": b.start}.get(name)
        timer = threading.Timer(args.fault_after_s, fault) if fault else None
        names = {r.url: r.name for r in replicas}
        with RewardClient([r.url for r in replicas], chunk_size=args.chunk_size,
                          max_concurrency=args.max_concurrency, deadline=args.deadline) as client:
            if timer:
                timer.start()
            wall, out, error = run_job(client, job_items(args.items))
            split = chunk_split(client, names)
        if timer:
            timer.join()
    finally:
        for replica in replicas:
            replica.stop()
    row = {"scenario": name, "wall_s": round(wall, 2), "answered": len(out.results) if out else 0,
           "error": error, "chunks_by_replica": split, "output": out}
    if out is not None and reference is not None:
        row["max_abs_diff"] = max_abs_difference(out, reference)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}")
    parser.add_argument("--items", type=int, default=1536)
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--max-concurrency", type=int, default=4)
    parser.add_argument("--deadline", type=float, default=300.0)
    parser.add_argument("--fault-after-s", type=float, default=1.5)
    parser.add_argument("--slowdown", type=float, default=4.0, help="how many times slower the slow replica is")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario (the table shows the median)")
    parser.add_argument("--max-batch-tokens", type=int, default=4096)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    chosen = [s for s in args.scenarios.split(",") if s]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    names = ["single", *(c for c in chosen if c != "single")]  # single first: the reference answers
    with tempfile.TemporaryDirectory(prefix="r3hf-failover-") as tmp:
        runs = run_rounds(names, args, Path(tmp))
    rows = [summarize(name, runs[name]) for name in names]
    single = rows[0]
    for row in rows:
        row["ratio_to_single"] = round(row["wall_s"] / single["wall_s"], 2) if single["answered"] else None
    print_table([r for r in rows if r["scenario"] in chosen], args)
    if args.json:
        args.json.write_text(json.dumps({"config": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2))
    return 0 if all(r["answered"] == args.items and not r["errors"] for r in rows) else 1


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"job: {args.items} items, chunk_size={args.chunk_size}, max_concurrency={args.max_concurrency}, "
          f"deadline={args.deadline:g}s, fault at {args.fault_after_s:g}s")
    print(f"{'scenario':<9} {'wall s':>7} {'x single':>8} {'answered':>8} {'max|diff|':>10}  "
          f"{'runs (s)':<20} {'chunks by replica, per run':<28} errors")
    for r in rows:
        diff = r.get("max_abs_diff")
        diff_text = "-" if diff is None else f"{diff:.1e}"
        runs = " ".join(f"{w:.1f}" for w in r["runs_s"])
        split = " | ".join(" ".join(f"{k}:{v}" for k, v in sorted(s.items())) for s in r["chunks_by_replica"]) or "-"
        print(f"{r['scenario']:<9} {r['wall_s']:>7.2f} {r['ratio_to_single'] or 0:>8.2f} {r['answered']:>8} "
              f"{diff_text:>10}  {runs:<20} {split:<28} {'; '.join(r['errors'])}")
    print(json.dumps(rows))


if __name__ == "__main__":
    sys.exit(main())
