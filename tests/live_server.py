"""Run an app under a real uvicorn server on 127.0.0.1 in a background thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from readiness import free_port, poll_ready

__all__ = ["free_port", "live_server", "wait_ready"]


@contextmanager
def live_server(app, timeout_s: float = 60.0) -> Iterator[str]:  # type: ignore[no-untyped-def]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    wait_ready(base_url, timeout_s, thread)
    try:
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_ready(base_url: str, timeout_s: float, thread: threading.Thread | None = None) -> None:
    alive = thread.is_alive if thread is not None else (lambda: True)
    if not poll_ready(base_url, alive, timeout_s, poll_s=0.05):
        raise RuntimeError(f"the server thread for {base_url} ended before it was ready (see the log above)")
