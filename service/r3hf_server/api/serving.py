"""Run the app under uvicorn with a graceful drain on SIGTERM (and SIGINT).

uvicorn's own shutdown closes the listening socket at once and drops idle keep-alive connections, so a trainer's
next request fails with a connection error, and a readiness probe sees a refused connection rather than a 503. Here
the first signal only starts a drain: ``/ready`` answers 503 at once, requests arriving from then on get 503
(``not_ready``, which clients retry), every request accepted before the signal runs to its normal answer, and when
none is left the listening socket closes (new connections are refused) and, once the open connections have gone,
uvicorn's normal shutdown runs and the process exits 0 (at once when ``--drain-timeout-s`` has passed). A second
signal skips the wait.

During the drain every response carries ``Connection: close`` (a default header, so uvicorn's own answers too) and
keep-alive connections idle for half a second are closed, so no client sends a request on a connection that is
about to go. A body still arriving when the drain times out is answered 503 ``not_ready`` (api.intake). Connection
guards (header timeout, --max-connections, JSON for malformed HTTP) live in api.connections.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from ..errors import NotReadyError
from .connections import AcceptErrorLog, ConnectionLimits, GuardedH11Protocol, fit_to_descriptor_limit, protocol_class

log = logging.getLogger(__name__)

# After the drain, uvicorn waits for open connections; anything still open then is cut after this long.
_SHUTDOWN_GRACE_S = 5
_CLOSE_HEADER = (b"connection", b"close")
_IDLE_BEFORE_CLOSE_S = 0.5  # idle this long, a keep-alive connection is not about to send: closing it cannot race


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.fastapi_app = app
        self.drain_timeout_s = drain_timeout_s
        self.servers = []  # the listeners: uvicorn sets them at start-up

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        drain = self.fastapi_app.state.drain
        if drain.draining or self.should_exit:
            super().handle_exit(sig, frame)  # a second signal: uvicorn's own shutdown, now
            return
        drain.begin()  # only flags: the event loop does the rest in on_tick (this runs inside a signal handler)
        log.info("signal %d: draining (%d requests in flight, up to %g s)", sig, drain.in_flight, self.drain_timeout_s)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(AcceptErrorLog(loop))
        await super().startup(sockets)  # the lifespan has loaded the model by now
        # Everything alive now (modules, the model's Python objects, tokenizers) lives as long as the process. Left
        # in the collector's view, every full collection walks it again with the GIL held, and full collections come
        # every few hundred thousand objects a large request allocates; /health waits behind each. Frozen, a full
        # collection walks only what requests made. Only the real server does this: a test process opens many apps.
        gc.collect()
        gc.freeze()

    async def on_tick(self, counter: int) -> bool:
        drain = self.fastapi_app.state.drain
        self._drain_step(drain)
        should_exit = await super().on_tick(counter)  # (it also rebuilds the default headers once a second)
        if drain.draining:
            self._close_after_each_response()
        return should_exit

    def _no_connection_left(self) -> bool:
        """Once nothing is in flight, stop accepting, then wait for the open connections to go: each ends after its
        answer (Connection: close) or after 0.5 s idle. Exiting with one still open cut a request that had just
        arrived on it (a client's ReadError, seen when a client reconnected as the last answer went out)."""
        for listener in self.servers:
            listener.close()  # new connections are refused from now on
        return not self.server_state.connections

    def _close_after_each_response(self) -> None:
        """Connection: close on every response from now on; idle keep-alive connections are closed."""
        if _CLOSE_HEADER not in self.server_state.default_headers:
            self.server_state.default_headers = [*self.server_state.default_headers, _CLOSE_HEADER]
        for connection in list(self.server_state.connections):
            if isinstance(connection, GuardedH11Protocol):
                connection.close_if_idle_for(_IDLE_BEFORE_CLOSE_S)

    def _drain_step(self, drain) -> None:  # type: ignore[no-untyped-def]
        if drain.draining and not self.should_exit:
            if drain.idle and self._no_connection_left():
                log.info("drained: every accepted request has been answered")
                self.should_exit = True
            elif drain.overdue(self.drain_timeout_s):
                log.warning("drain timeout (%g s) passed with %d requests in flight; answering their queued items "
                            "with 503", self.drain_timeout_s, drain.in_flight)
                engine = getattr(self.fastapi_app.state, "engine", None)
                if engine is not None:
                    engine.fail_waiting(NotReadyError("the server is shutting down; retry"))
                drain.uploads_cut = True  # bodies still arriving get 503 not_ready (api.intake)
                self.should_exit = True


def serve_app(app: FastAPI, host: str, port: int, log_level: str, drain_timeout_s: float) -> None:
    DrainingServer(server_config(app, host, port, log_level), app, drain_timeout_s).run()


def server_config(app: FastAPI, host: str, port: int, log_level: str) -> uvicorn.Config:
    """uvicorn's config with the guarded h11 protocol, limits from the app's settings."""
    settings = app.state.settings
    limits = ConnectionLimits(fit_to_descriptor_limit(settings.max_connections), settings.header_timeout_s)
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, http=protocol_class(limits),
                          timeout_graceful_shutdown=_SHUTDOWN_GRACE_S)
