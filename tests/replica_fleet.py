"""Replica processes on 127.0.0.1 that a test can SIGKILL, SIGTERM or bring back on the same port.

Shared by the client-failover tests (tests/reliability/test_replica_failover.py) and the measurement script
(load_tests/replica_failover.py). A replica is a real ``r3hf serve`` process; with ``slowdown`` it is the same server
on a node that many times slower: the fault-injecting runner of tests/fault_runner.py pauses after every forward for
(slowdown - 1) x the forward's own time, so the replica stays that much slower however busy the machine is
(``python tests/replica_fleet.py --slowdown F [serve flags]``).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from readiness import free_port, poll_ready

_HERE = Path(__file__).resolve().parent


class ReplicaProcess:
    """One server process; ``serve_args`` are ``r3hf serve`` flags (e.g. ``["--runner", "fake"]``)."""

    def __init__(self, serve_args: list[str] = (), *, slowdown: float = 1.0, log_dir: Path | None = None,
                 name: str = "replica") -> None:
        self.serve_args, self.slowdown, self.name = list(serve_args), slowdown, name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = (log_dir or Path(os.environ.get("TMPDIR", "/tmp"))) / f"{name}-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> ReplicaProcess:
        """Start (or restart, on the same port) without waiting for readiness."""
        if self.slowdown != 1.0:
            cmd = [sys.executable, str(_HERE / "replica_fleet.py"), "--slowdown", str(self.slowdown)]
        else:
            cmd = [sys.executable, "-m", "r3hf_server", "serve"]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen([*cmd, "--port", str(self.port), *self.serve_args], stdout=log,
                                         stderr=subprocess.STDOUT, env=env)
        return self

    def wait_ready(self, timeout_s: float = 600.0) -> ReplicaProcess:
        try:
            ready = poll_ready(self.url, lambda: self.proc is not None and self.proc.poll() is None, timeout_s)
        except TimeoutError as exc:
            raise TimeoutError(f"{self.name}: {exc}:\n{self.log()[-3000:]}") from None
        if not ready:
            raise RuntimeError(f"{self.name} exited while starting:\n{self.log()[-3000:]}")
        return self

    def kill(self) -> None:
        """SIGKILL: the pod dies at once (OOM kill, node loss); connections are reset, the port refuses."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def terminate(self) -> None:
        """SIGTERM: the server drains (503 not_ready to new requests, answers those accepted) and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def requests_answered(self, route: str = "/token_rewards") -> int:
        """Successful requests to ``route`` according to the replica's own /metrics (0 if it cannot be asked)."""
        try:
            text = httpx.get(f"{self.url}/metrics", timeout=5).text
        except httpx.TransportError:
            return 0
        pattern = re.compile(r'^r3hf_requests_total\{([^}]*)\} ([0-9.e+]+)$')
        total = 0.0
        for line in text.splitlines():
            match = pattern.match(line)
            if match and f'route="{route}"' in match.group(1) and 'status="200"' in match.group(1):
                total += float(match.group(2))
        return int(total)


PROMPTS = ["How was your day?", "Summarise the meeting in one sentence.", "Write a haiku about the sea.",
           "Explain what a reward model does.", "Give me a tip for debugging flaky tests."]
RESPONSES = [" It was wonderful, thank you.", " We agreed to ship on Friday after the last review.",
             " Grey waves fold and break; the gulls argue with the wind.", " It scores how good a response is.",
             " Run the test in a loop and log the seed of every failure."]


def job_items(count: int) -> list[dict]:
    """A trainer-shaped job: distinct items of varied length (every item is distinguishable in the answer)."""
    return [{"prompt": f"{PROMPTS[k % 5]} (sample {k})", "response": RESPONSES[(k // 5) % 5] * (1 + k % 3)}
            for k in range(count)]


def max_abs_difference(got, reference) -> float:  # type: ignore[no-untyped-def]
    """Largest |difference| over scores, prompt scores and every token reward of two TokenRewardsResponses."""
    if len(got.results) != len(reference.results):
        return float("inf")
    worst = 0.0
    for a, b in zip(got.results, reference.results):
        if a.index != b.index or len(a.token_rewards) != len(b.token_rewards):
            return float("inf")
        pairs = [(a.score, b.score), (a.prompt_score, b.prompt_score), *zip(a.token_rewards, b.token_rewards)]
        worst = max(worst, *(abs(x - y) for x, y in pairs))
    return worst


def _serve_slow(argv: list[str]) -> int:
    """``r3hf serve`` on a node ``--slowdown`` times slower (see the module docstring)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--slowdown", type=float, required=True)
    slow, serve_argv = parser.parse_known_args(argv)
    from fault_runner import Faults, FaultyRunner
    from r3hf_server.api.app import create_app
    from r3hf_server.api.serving import serve_app
    from r3hf_server.cli import build_parser
    from r3hf_server.engine import build_runner
    from r3hf_server.settings import Settings

    class SlowedRunner(FaultyRunner):
        active = False  # off during the warm-up: it would only slow the start

        def forward(self, batch):  # type: ignore[no-untyped-def]
            started = time.monotonic()
            results = super().forward(batch)
            if self.active:
                self.release.wait((slow.slowdown - 1) * (time.monotonic() - started))
            return results

    given = vars(build_parser().parse_args(["serve", *serve_argv]))
    given.pop("command")
    settings = Settings(**given)
    runner = SlowedRunner(build_runner(settings), Faults())
    app = create_app(settings, runner)
    url = f"http://127.0.0.1:{settings.port}/ready"
    threading.Thread(target=_activate_once_ready, args=(url, runner), daemon=True).start()
    serve_app(app, settings.host, settings.port, settings.log_level, settings.drain_timeout_s)
    return 0


def _activate_once_ready(url: str, runner) -> None:  # type: ignore[no-untyped-def]
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                runner.active = True
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(_serve_slow(sys.argv[1:]))
