"""`r3hf serve` (the embedded demo RM) in a subprocess on an ephemeral 127.0.0.1 port, for one experiment run.

The server runs in the server venv (``.venv``), the trainer in the trainer venv: the same split a user has between
the reward service and the RL job. The reward traffic goes through ``r3hf_client`` only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))
from readiness import free_port, poll_ready  # noqa: E402  (shared with the tests and the load tests)

SERVER_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"


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
    return poll_ready(base_url, lambda: proc.poll() is None, timeout_s, poll_s=0.2)


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
