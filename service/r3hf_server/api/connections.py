"""Connection hygiene under uvicorn's h11 protocol: header timeout, a cap on open connections, JSON for malformed
HTTP, idle keep-alives closed during a drain, and rate-limited logging of failed accepts.

uvicorn (0.54, h11) arms no timer on a new connection: its keep-alive timeout starts only after a first response, so
a client that connects and stays silent, or sends its headers a byte at a time, holds a socket (and a file
descriptor) forever. Under a low descriptor limit a few dozen such clients locked out every real one, and asyncio
logged each failed ``accept()`` with a traceback (hundreds of thousands of lines). uvicorn's ``limit_concurrency``
does not help: it is checked when a request's headers are complete, which a silent client never reaches.

Here every connection must complete a request's headers within ``--header-timeout-s`` of opening (or of its last
response), or it is closed. Past ``--max-connections`` the connection that has waited longest without a request in
progress is closed to make room; if every connection is busy the newcomer gets a JSON 503 and is closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import time
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

_DESCRIPTOR_RESERVE = 16  # descriptors kept for everything but client sockets (logs, tokenizer files, the listener)


@dataclass
class ConnectionLimits:
    max_connections: int
    header_timeout_s: float


def fit_to_descriptor_limit(max_connections: int) -> int:
    """``max_connections`` lowered so that open connections can never exhaust the process's descriptors."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    try:
        open_now = len(os.listdir("/proc/self/fd"))
    except OSError:
        open_now = 32
    room = max(1, soft - open_now - _DESCRIPTOR_RESERVE)
    if room < max_connections:
        log.warning("--max-connections %d lowered to %d to fit the descriptor limit (ulimit -n %d, %d open)",
                    max_connections, room, soft, open_now)
        return room
    return max_connections


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the guards above; ``limits`` is bound by ``protocol_class``."""

    limits: ConnectionLimits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting_since = time.monotonic()  # since connect or last response: no request in progress
        self._header_deadline: asyncio.TimerHandle | None = None

    @property
    def between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self._make_room():
            self._refuse_and_close(503, "not_ready", "the server has as many open connections as it allows "
                                   "(--max-connections); retry shortly")
            return
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # a request's headers are complete
            self._disarm_header_deadline()

    def on_response_complete(self) -> None:
        self.waiting_since = time.monotonic()
        cycle = self.cycle
        super().on_response_complete()
        if self.cycle is cycle and not self.transport.is_closing():
            self._arm_header_deadline()  # the next request's headers are due too (keep-alive usually closes first)

    def send_400_response(self, msg: str) -> None:
        self._refuse_and_close(400, "malformed_request", "the request is not valid HTTP/1.1; check the request line "
                               "and headers")

    def close_if_idle_for(self, seconds: float) -> bool:
        """Close the connection if no request is in progress and none has been for ``seconds`` (drain)."""
        idle_for = time.monotonic() - self.waiting_since
        if self.between_requests and idle_for >= seconds and not self.transport.is_closing():
            self.transport.close()
            return True
        return False

    def _make_room(self) -> bool:
        waiting = [c for c in self.connections if c is not self and isinstance(c, GuardedH11Protocol)
                   and c.between_requests and not c.transport.is_closing()]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c.waiting_since)
        oldest.transport.close()
        return True

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self.limits.header_timeout_s, self._headers_overdue)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_overdue(self) -> None:
        self._header_deadline = None
        if self.between_requests and not self.transport.is_closing():
            self.transport.close()

    def _refuse_and_close(self, status: int, error_type: str, message: str) -> None:
        body = json.dumps({"error": message, "error_type": error_type}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close"), (b"x-error-type", error_type.encode())]
        try:
            output = self.conn.send(h11.Response(status_code=status, headers=headers))
            output += self.conn.send(h11.Data(data=body)) + self.conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError:  # a response was already under way: just close
            output = b""
        if output:
            self.transport.write(output)
        self.transport.close()


def protocol_class(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    return type("R3HFH11Protocol", (GuardedH11Protocol,), {"limits": limits})


class AcceptErrorLog:
    """A loop exception handler that logs failed ``accept()`` calls at most once per ``period_s``, with a count."""

    MARKER = "socket.accept() out of system resource"

    def __init__(self, loop: asyncio.AbstractEventLoop, period_s: float = 10.0) -> None:
        self.previous = loop.get_exception_handler()
        self.period_s = period_s
        self.suppressed = 0
        self.last_logged = -period_s

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if not str(context.get("message", "")).startswith(self.MARKER):
            if self.previous is not None:
                self.previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self.last_logged < self.period_s:
            self.suppressed += 1
            return
        log.error("cannot accept connections: %s (%d more like it in the last %.0f s); lower --max-connections or "
                  "raise the descriptor limit", context.get("exception"), self.suppressed, now - self.last_logged)
        self.suppressed, self.last_logged = 0, now
