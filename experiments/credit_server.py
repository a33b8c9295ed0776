"""`r3hf serve` (the embedded demo RM) in a subprocess on an ephemeral 127.0.0.1 port, for one experiment run.

The server runs in the server venv (``.venv``), the trainer in the trainer venv: the same split a user has between
the reward service and the RL job. The reward traffic goes through ``r3hf_client`` only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVER_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served_demo_rm(python: Path = SERVER_PYTHON, threads: int = 1, ready_timeout_s: float = 600.0,
                   attempts: int = 3) -> Iterator[str]:
    """Base URL of a ready demo-RM server; the process is stopped (SIGTERM, then SIGKILL) on exit.

    A port picked free can be taken before the server binds it, so start-up is retried on a fresh port.
    """
    last_error = ""
    for _ in range(attempts):
        port = free_port()
        proc = subprocess.Popen(
            [str(python), "-m", "r3hf_server", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"},
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            if wait_ready(base_url, proc, ready_timeout_s):
                yield base_url
                return
            last_error = proc.stderr.read()[-2000:] if proc.stderr else ""
        finally:
            stop(proc)
    raise RuntimeError(f"r3hf serve did not start after {attempts} attempts: {last_error.strip()}")


def wait_ready(base_url: str, proc: subprocess.Popen, timeout_s: float) -> bool:
    """True once /ready answers 200; False if the process exits first (e.g. the port was taken)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base_url} not ready after {timeout_s:.0f}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if proc.stderr:
        proc.stderr.close()
