"""Start-up helpers every harness shares (the tests, load_tests/ and experiments/): a free loopback port, and the one
loop that waits for a server's /ready while watching that the server is still there.

Only httpx and the standard library, so it imports in the server's venv and in the trainers' venv alike.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def poll_ready(base_url: str, alive: Callable[[], bool], timeout_s: float, poll_s: float = 0.1) -> bool:
    """True once ``base_url``/ready answers 200; False as soon as ``alive()`` is false (the server stopped first,
    each caller says why in its own terms); TimeoutError when neither happens within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(poll_s)
    raise TimeoutError(f"{base_url} not ready after {timeout_s:g} s")
