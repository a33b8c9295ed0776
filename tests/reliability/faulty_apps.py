"""Apps over the fake runner with faults injected, in process (TestClient) or behind uvicorn on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI
from fastapi.testclient import TestClient

from r3hf_server.api.app import create_app
from r3hf_server.runner.fake import FakeRunner, char_id
from r3hf_server.settings import Settings

from fault_runner import Faults, FaultyRunner

NAN_CHAR, INF_CHAR, FAIL_CHAR = "\u2620", "\u221e", "\u2622"  # skull, infinity, radioactive


def faulty_app(faults: Faults | None = None, max_length: int = 64, **settings) -> tuple[FastAPI, FaultyRunner]:
    runner = FaultyRunner(FakeRunner(max_length=max_length), faults or Faults())
    settings.setdefault("max_items_per_request", 64)
    return create_app(Settings(runner="fake", **settings), runner), runner


def item(response: str = "good", prompt: str = "p") -> dict:
    return {"prompt": prompt, "response": response}


def token(char: str) -> int:
    return char_id(char)


def metric(client_or_text, name: str) -> float:
    text = client_or_text if isinstance(client_or_text, str) else client_or_text.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


@contextmanager
def in_process(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
