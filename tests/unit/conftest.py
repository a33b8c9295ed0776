from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from r3hf_server.api.app import create_app
from r3hf_server.runner.fake import FakeRunner
from r3hf_server.settings import Settings


@pytest.fixture(scope="session")
def fake_client() -> TestClient:
    """The real app over the deterministic fake runner, in process."""
    app = create_app(Settings(runner="fake", max_items_per_request=64), FakeRunner(max_length=64))
    with TestClient(app) as client:
        yield client
