"""Fixtures for the reliability tests; the app builders live in faulty_apps.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI

from faulty_apps import faulty_app
from live_server import live_server

from fault_runner import Faults, FaultyRunner


@pytest.fixture
def serve_faulty() -> Iterator[Callable[..., tuple[str, FastAPI, FaultyRunner]]]:
    """serve_faulty(faults, **settings) -> (base URL, app, runner) of a live server on 127.0.0.1."""
    stack: list = []

    def start(faults: Faults | None = None, **settings):  # type: ignore[no-untyped-def]
        app, runner = faulty_app(faults, **settings)
        server = live_server(app)
        base_url = server.__enter__()
        stack.append((server, runner))
        return base_url, app, runner

    yield start
    for server, runner in reversed(stack):
        runner.release.set()  # end injected delays so the server can stop at once
        server.__exit__(None, None, None)
