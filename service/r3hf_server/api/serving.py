"""Run the app under uvicorn with a graceful drain on SIGTERM (and SIGINT).

uvicorn's own shutdown closes the listening socket at once and drops idle keep-alive connections, so a trainer's
next request fails with a connection error, and a readiness probe sees a refused connection rather than a 503. Here
the first signal only starts a drain: ``/ready`` answers 503 at once, requests arriving from then on get 503
(``not_ready``, which clients retry), every request accepted before the signal runs to its normal answer, and when
none is left (or ``--drain-timeout-s`` has passed) uvicorn's normal shutdown runs and the process exits 0. A second
signal skips the wait.
"""

from __future__ import annotations

import logging
from types import FrameType

import uvicorn
from fastapi import FastAPI

from ..errors import NotReadyError

log = logging.getLogger(__name__)

# After the drain, uvicorn waits for open connections; anything still open then is cut after this long.
_SHUTDOWN_GRACE_S = 5


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.fastapi_app = app
        self.drain_timeout_s = drain_timeout_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        drain = self.fastapi_app.state.drain
        if drain.draining or self.should_exit:
            super().handle_exit(sig, frame)  # a second signal: uvicorn's own shutdown, now
            return
        drain.begin()  # only flags: the event loop does the rest in on_tick (this runs inside a signal handler)
        log.info("signal %d: draining (%d requests in flight, up to %g s)", sig, drain.in_flight, self.drain_timeout_s)

    async def on_tick(self, counter: int) -> bool:
        drain = self.fastapi_app.state.drain
        if drain.draining and not self.should_exit:
            if drain.idle:
                log.info("drained: every accepted request has been answered")
                self.should_exit = True
            elif drain.overdue(self.drain_timeout_s):
                log.warning("drain timeout (%g s) passed with %d requests in flight; answering their queued items "
                            "with 503", self.drain_timeout_s, drain.in_flight)
                engine = getattr(self.fastapi_app.state, "engine", None)
                if engine is not None:
                    engine.fail_waiting(NotReadyError("the server is shutting down; retry"))
                self.should_exit = True
        return await super().on_tick(counter)


def serve_app(app: FastAPI, host: str, port: int, log_level: str, drain_timeout_s: float) -> None:
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=_SHUTDOWN_GRACE_S)
    DrainingServer(config, app, drain_timeout_s).run()
