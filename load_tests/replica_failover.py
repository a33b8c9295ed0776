"""Client-side replicas under failure: one job over two `r3hf serve` replicas while one dies, drains or is slow.

    .venv/bin/python load_tests/replica_failover.py                    # every scenario, the issue's job shape
    .venv/bin/python load_tests/replica_failover.py --scenarios single,kill --json failover.json

The job is one ``RewardClient.token_rewards`` call of --items items (chunk_size 64, max_concurrency 4, deadline
300 s by default) against replicas started here on 127.0.0.1 (the embedded demo model). Scenarios:

- single:   one healthy replica alone: the reference time and the reference answers;
- kill:     two replicas, replica A SIGKILLed --fault-after-s into the job (a pod OOM-killed);
- term:     two replicas, replica A SIGTERMed --fault-after-s into the job (drains, answers 503 not_ready, exits);
- slow:     two replicas, every forward of replica A delayed --slow-delay-s (fault-injecting runner);
- all-down: both replicas down when the job starts, replica B started --fault-after-s later.

Prints a table and JSON: wall time, ratio to `single`, the largest |difference| from the reference answers, and
which replica answered how many chunks (the client's own count). Every process it starts is stopped on exit.
"""

from __future__ import annotations

import argparse
import json
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


def scenario(name: str, args: argparse.Namespace, log_dir: Path, reference) -> dict:  # type: ignore[no-untyped-def]
    serve_args = ["--max-batch-tokens", str(args.max_batch_tokens)]
    a = ReplicaProcess(serve_args, delay_s=args.slow_delay_s if name == "slow" else 0.0, log_dir=log_dir, name="A")
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
    parser.add_argument("--slow-delay-s", type=float, default=0.5, help="extra seconds per forward of the slow one")
    parser.add_argument("--max-batch-tokens", type=int, default=4096)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    chosen = [s for s in args.scenarios.split(",") if s]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    rows, reference = [], None
    with tempfile.TemporaryDirectory(prefix="r3hf-failover-") as tmp:
        for name in (["single"] if "single" not in chosen else []) + chosen:  # single first: the reference
            row = scenario(name, args, Path(tmp), reference)
            if name == "single":
                reference, row["reference"] = row["output"], True
            rows.append(row)
    single = next(r for r in rows if r["scenario"] == "single")
    for row in rows:
        row.pop("output")
        row["ratio_to_single"] = round(row["wall_s"] / single["wall_s"], 2) if single["answered"] else None
    print_table([r for r in rows if r["scenario"] in chosen], args)
    if args.json:
        args.json.write_text(json.dumps({"config": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2))
    return 0 if all(r["answered"] == args.items for r in rows) else 1


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"job: {args.items} items, chunk_size={args.chunk_size}, max_concurrency={args.max_concurrency}, "
          f"deadline={args.deadline:g}s, fault at {args.fault_after_s:g}s")
    print(f"{'scenario':<9} {'wall s':>7} {'x single':>8} {'answered':>8} {'max|diff|':>10}  chunks by replica  error")
    for r in rows:
        diff = r.get("max_abs_diff")
        diff_text = "-" if diff is None else f"{diff:.1e}"
        split = " ".join(f"{k}:{v}" for k, v in sorted(r["chunks_by_replica"].items())) or "-"
        print(f"{r['scenario']:<9} {r['wall_s']:>7.2f} {r['ratio_to_single'] or 0:>8.2f} {r['answered']:>8} "
              f"{diff_text:>10}  {split:<17}  {r['error']}")
    print(json.dumps(rows))


if __name__ == "__main__":
    sys.exit(main())
