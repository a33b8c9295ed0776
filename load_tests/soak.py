"""Soak: steady load against a reward server on 127.0.0.1 for a long time, sampling the server's resident memory.

    .venv/bin/python load_tests/soak.py                        # 10 minutes, 8 clients, the embedded demo model
    .venv/bin/python load_tests/soak.py --minutes 2 --clients 4 --json soak.json

Starts `r3hf serve` itself (loopback only), keeps --clients trainers posting mixed requests (single items, batches
of 16 to /score, GRPO-style groups of 8 to /token_rewards) back to back, samples the server's RSS every --sample-s
seconds from /proc, and reports the least-squares slope of RSS over time after the first --settle-fraction of the
run (start-up, allocator growth and caches filling are not a leak). Exits 1 if any request failed. Bounded: at most
64 clients and 60 minutes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from run_load_test import HOST, free_port, wait_ready

MAX_CLIENTS, MAX_MINUTES = 64, 60
PROMPT = "Write a short, friendly reply to a colleague who asked how the project is going."
RESPONSES = [" It is going well, thanks for asking!", " Slowly, but the tests finally pass.",
             " Honestly it has been a rough week; the benchmark keeps moving.", " Great. We ship on Friday."]


def request_for(n: int) -> tuple[str, dict]:
    kind = n % 3
    if kind == 0:
        return "/score", {"items": [{"prompt": PROMPT, "response": RESPONSES[n % 4]}]}
    if kind == 1:
        return "/score", {"items": [{"prompt": f"{PROMPT} ({k})", "response": RESPONSES[k % 4]} for k in range(16)]}
    return "/token_rewards", {"items": [{"prompt": PROMPT, "response": RESPONSES[k % 4] * (1 + k % 3)}
                                        for k in range(8)]}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) in MiB per minute."""
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    return 60 * cov / var if var else 0.0


class Load:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def client(self, seed: int) -> None:
        n = seed
        with httpx.Client(base_url=self.base_url, timeout=120) as http:
            while not self.stop.is_set():
                path, body = request_for(n)
                n += 1
                try:
                    r = http.post(path, json=body)
                    good = r.status_code == 200 and len(r.json()["results"]) == len(body["items"])
                    problem = "" if good else f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    if problem:
                        self.failures.append(problem)
                    else:
                        self.ok += 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help=f"length of the run (≤ {MAX_MINUTES})")
    parser.add_argument("--clients", type=int, default=8, help=f"concurrent clients (1..{MAX_CLIENTS})")
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--settle-fraction", type=float, default=0.2, help="leading part of the run left out of the slope")
    parser.add_argument("--runner", choices=["hf", "fake"], default="hf")
    parser.add_argument("--model", default=None, help="reward model (default: the embedded demo RM)")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= MAX_MINUTES or not 1 <= args.clients <= MAX_CLIENTS:
        parser.error(f"--minutes must be in (0, {MAX_MINUTES}] and --clients in 1..{MAX_CLIENTS}")
    return args


def soak(args: argparse.Namespace, base_url: str, pid: int) -> dict:
    load = Load(base_url)
    threads = [threading.Thread(target=load.client, args=(i,), daemon=True) for i in range(args.clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    samples: list[tuple[float, float]] = []
    while (elapsed := time.monotonic() - started) < args.minutes * 60:
        samples.append((elapsed, rss_mib(pid)))
        time.sleep(min(args.sample_s, max(args.minutes * 60 - elapsed, 0.01)))
    samples.append((time.monotonic() - started, rss_mib(pid)))
    load.stop.set()
    for t in threads:
        t.join(timeout=150)
    settled = [s for s in samples if s[0] >= args.settle_fraction * args.minutes * 60] or samples
    return {
        "minutes": args.minutes, "clients": args.clients, "requests_ok": load.ok, "requests_failed": len(load.failures),
        "first_failures": load.failures[:5], "rss_mib_start": round(samples[0][1], 1),
        "rss_mib_settled": round(settled[0][1], 1), "rss_mib_end": round(samples[-1][1], 1),
        "rss_mib_max": round(max(m for _, m in samples), 1), "samples": len(samples),
        "rss_slope_mib_per_min": round(slope_per_minute(settled), 3),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    port = free_port()
    command = [sys.executable, "-m", "r3hf_server", "serve", "--host", HOST, "--port", str(port),
               "--runner", args.runner, "--log-level", "warning"] + (["--model", args.model] if args.model else [])
    with tempfile.TemporaryDirectory() as work:
        log_path = Path(work) / "server.log"
        with open(log_path, "w") as log:
            server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(f"http://{HOST}:{port}", server, log_path)
            summary = soak(args, f"http://{HOST}:{port}", server.pid)
        finally:
            server.terminate()
            server.wait(timeout=120)
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if summary["requests_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
