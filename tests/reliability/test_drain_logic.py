"""The drain's decisions, without a process: the first signal only starts a drain, the server exits once idle, and
a drain past its timeout answers the queued items with 503 before exiting. test_shutdown.py runs the real thing."""

from __future__ import annotations

import asyncio
import signal

import uvicorn

from faulty_apps import faulty_app
from r3hf_server.api.serving import DrainingServer
from r3hf_server.errors import NotReadyError


class StubEngine:
    """Records what the drain asks of the engine, the only thing below the api that the server talks to."""

    def __init__(self) -> None:
        self.failed_with: list[Exception] = []

    def fail_waiting(self, error: Exception) -> None:
        self.failed_with.append(error)


def draining_server(drain_timeout_s: float) -> tuple[DrainingServer, object]:
    app, _ = faulty_app()
    app.state.engine = StubEngine()
    return DrainingServer(uvicorn.Config(app), app, drain_timeout_s), app


def test_the_first_signal_drains_and_a_second_exits_now():
    server, app = draining_server(30)
    server.handle_exit(signal.SIGTERM, None)
    assert app.state.drain.draining and not server.should_exit
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit


def test_the_server_exits_once_every_accepted_request_is_answered():
    server, app = draining_server(30)
    app.state.drain.in_flight = 2
    server.handle_exit(signal.SIGTERM, None)
    assert asyncio.run(server.on_tick(1)) is False  # still answering
    app.state.drain.in_flight = 0
    assert asyncio.run(server.on_tick(2)) is True
    assert app.state.engine.failed_with == []


class Listener:
    closed = False

    def close(self) -> None:
        self.closed = True


def test_once_idle_the_server_stops_accepting_and_exits_only_when_its_connections_are_gone():
    server, app = draining_server(30)
    server.servers = [Listener()]
    connection = object()  # a client that connected as the last answer went out; its request may be on the way
    server.server_state.connections.add(connection)
    server.handle_exit(signal.SIGTERM, None)
    assert asyncio.run(server.on_tick(1)) is False
    assert server.servers[0].closed  # new connections are refused from now on
    server.server_state.connections.discard(connection)  # answered (Connection: close) or closed after 0.5 s idle
    assert asyncio.run(server.on_tick(2)) is True


def test_a_drain_past_its_timeout_answers_queued_items_with_503_and_exits():
    server, app = draining_server(0)
    app.state.drain.in_flight = 1
    server.handle_exit(signal.SIGTERM, None)
    assert asyncio.run(server.on_tick(1)) is True
    [error] = app.state.engine.failed_with
    assert isinstance(error, NotReadyError)
