"""Start a reward server on 127.0.0.1, run the locust scenarios against it headless, print what the clients saw.

    .venv/bin/python load_tests/run_load_test.py --users 16 --run-time 60           # the embedded demo model
    .venv/bin/python load_tests/run_load_test.py --model /models/rm --users 32      # a real reward model

Bounded by design: at most 64 users and 600 seconds, and only against the server it starts itself (loopback).
Prints p50/p95/p99 and throughput per scenario, then the server's own split of the time (queue wait vs tokenization
vs forward, from the x-*-time headers). Exits 1 if any request failed. Needs locust (bash scripts/setup_deploy_tools.sh
puts it in .venv-tools, away from the server's dependencies).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_USERS, MAX_SECONDS = 64, 600
HOST = "127.0.0.1"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=8, help=f"concurrent simulated trainers (1..{MAX_USERS})")
    parser.add_argument("--spawn-rate", type=float, default=None, help="users started per second (default: all at once)")
    parser.add_argument("--run-time", type=int, default=30, help=f"seconds of load (1..{MAX_SECONDS})")
    parser.add_argument("--model", default=None, help="reward model for the server (default: the embedded demo RM)")
    parser.add_argument("--runner", choices=["hf", "fake"], default="hf", help="fake = no model, measures the HTTP path")
    parser.add_argument("--port", type=int, default=0, help="server port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.users <= MAX_USERS or not 1 <= args.run_time <= MAX_SECONDS:
        parser.error(f"--users must be in 1..{MAX_USERS} and --run-time in 1..{MAX_SECONDS}")
    return args


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def reward_server(args: argparse.Namespace, log_path: Path):
    port = args.port or free_port()
    command = [sys.executable, "-m", "r3hf_server", "serve", "--host", HOST, "--port", str(port),
               "--runner", args.runner, "--log-level", "warning"]
    if args.model:
        command += ["--model", args.model]
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://{HOST}:{port}", server, log_path)
        yield f"http://{HOST}:{port}"
    finally:
        server.terminate()
        server.wait(timeout=60)


def wait_ready(base_url: str, server: subprocess.Popen, log_path: Path, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}:\n{log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the server was not ready after {timeout_s:.0f} s")


def locust_binary() -> str:
    for candidate in (ROOT / ".venv-tools/bin/locust", shutil.which("locust")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise SystemExit("locust is not installed: run bash scripts/setup_deploy_tools.sh")


def run_locust(args: argparse.Namespace, base_url: str, work: Path) -> int:
    command = [
        locust_binary(), "-f", str(ROOT / "load_tests/locustfile.py"), "--headless", "--host", base_url,
        "--users", str(args.users), "--spawn-rate", str(args.spawn_rate or args.users),
        "--run-time", f"{args.run_time}s", "--stop-timeout", "10", "--only-summary", "--csv", str(work / "locust"),
    ]
    env = {**os.environ, "R3HF_LOAD_TIMINGS": str(work / "timings.json")}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.run_time + 120)
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:], sep="\n", file=sys.stderr)
    return result.returncode


def client_side(stats_csv: Path) -> list[dict]:
    rows = []
    with open(stats_csv) as handle:
        for row in csv.DictReader(handle):
            rows.append({
                "scenario": row["Name"], "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                "p50_ms": float(row["50%"]), "p95_ms": float(row["95%"]), "p99_ms": float(row["99%"]),
                "requests_per_s": float(row["Requests/s"]),
            })
    return rows


def server_side(timings_json: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Per scenario and header: p50 and p95 in ms."""
    raw = json.loads(timings_json.read_text()) if timings_json.exists() else {}
    return {
        scenario: {header: {"p50": percentile(values, 50), "p95": percentile(values, 95)}
                   for header, values in headers.items() if values}
        for scenario, headers in raw.items()
    }


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def scored_totals(base_url: str) -> dict[str, float]:
    """Items and tokens the server has scored so far, from its own counters."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    totals = {"items": 0.0, "tokens": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "r3hf_items_total":
                totals["items"] += sample.value
            elif sample.name == "r3hf_input_tokens_sum":
                totals["tokens"] += sample.value
    return totals


def per_second(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    return {f"{name}_per_s": (after[name] - before[name]) / seconds for name in before}


def print_summary(clients: list[dict], servers: dict, throughput: dict[str, float]) -> None:
    print(f"{'scenario':<36} {'requests':>8} {'failed':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for row in clients:
        print(f"{row['scenario']:<36} {row['requests']:>8} {row['failures']:>6} {row['p50_ms']:>8.0f} "
              f"{row['p95_ms']:>8.0f} {row['p99_ms']:>8.0f} {row['requests_per_s']:>8.2f}")
    print(f"\nscored: {throughput['items_per_s']:.1f} items/s, {throughput['tokens_per_s']:.0f} tokens/s "
          "(server counters, over the whole locust run including start-up)")
    print("\nserver-side split from the timing headers, p50 / p95 ms:")
    print(f"{'scenario':<36} {'queue':>13} {'tokenize':>13} {'forward':>13} {'total':>13}")
    for scenario, headers in sorted(servers.items()):
        cells = [headers.get(f"x-{h}-time") for h in ("queue", "tokenization", "inference", "total")]
        print(f"{scenario:<36} " + " ".join(f"{c['p50']:>6.1f}/{c['p95']:<6.1f}" if c else f"{'-':>13}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="r3hf-load-") as tmp:
        work = Path(tmp)
        with reward_server(args, work / "server.log") as base_url:
            before = scored_totals(base_url)
            started = time.monotonic()
            locust_rc = run_locust(args, base_url, work)
            throughput = per_second(before, scored_totals(base_url), time.monotonic() - started)
        clients, servers = client_side(work / "locust_stats.csv"), server_side(work / "timings.json")
    print_summary(clients, servers, throughput)
    if args.json:
        args.json.write_text(json.dumps({"clients": clients, "server": servers, "throughput": throughput,
                                         "users": args.users, "run_time_s": args.run_time}, indent=2))
    failed = sum(row["failures"] for row in clients if row["scenario"] != "Aggregated")
    if failed or locust_rc != 0:
        print(f"\nFAILED: {failed} failed requests (locust exit code {locust_rc})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
