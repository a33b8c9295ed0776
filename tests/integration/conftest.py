from __future__ import annotations

from contextlib import ExitStack

import pytest

from live_server import live_server
from r3hf_server.api.app import create_app
from r3hf_server.settings import Settings


@pytest.fixture(scope="session")
def serve():
    """serve(model_dir, **settings) -> base URL of a real server on 127.0.0.1; one per distinct setup per session."""
    servers: dict[tuple, str] = {}
    with ExitStack() as stack:

        def start(model: str, **overrides) -> str:
            key = (str(model), tuple(sorted(overrides.items())))
            if key not in servers:
                app = create_app(Settings(model=str(model), **overrides))
                servers[key] = stack.enter_context(live_server(app))
            return servers[key]

        yield start
