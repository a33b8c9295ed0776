"""Graceful shutdown state: after SIGTERM no new work is taken, and requests accepted before it are let finish.

The server (``api.serving.DrainingServer``) flips ``begin()`` from its signal handler and exits once ``idle`` or when
``--drain-timeout-s`` runs out; the request middleware keeps ``in_flight`` and marks requests that arrived after the
signal, which the routes answer with 503 (``not_ready``) so a client retries another replica.
"""

from __future__ import annotations

import time


class Drain:
    def __init__(self) -> None:
        self.started_at: float | None = None
        self.in_flight = 0  # load requests (probes and scrapes excluded) between middleware entry and response
        self.uploads_cut = False  # the drain ran out of time: bodies still arriving are answered 503 (api.intake)

    @property
    def draining(self) -> bool:
        return self.started_at is not None

    def begin(self) -> None:
        if self.started_at is None:
            self.started_at = time.monotonic()

    @property
    def idle(self) -> bool:
        return self.in_flight == 0

    def overdue(self, timeout_s: float) -> bool:
        return self.started_at is not None and time.monotonic() - self.started_at >= timeout_s
