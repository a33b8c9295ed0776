"""Fixtures shared by every test directory, and the fast lane's two rules.

- ``pytest -m "not slow"`` is the fast lane: unit and fake-runner tests. Anything that loads a model or starts a
  server is marked ``slow``; ``_slow_work_is_marked_slow`` below fails a test that does either without the mark.
- ``R3HF_BLOCK_TORCH=1`` makes ``import torch`` / ``import transformers`` fail, to show that a test needs neither
  (scripts/test.sh runs the client and wire tests that way).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

if os.environ.get("R3HF_BLOCK_TORCH") == "1":
    for _name in ("torch", "transformers"):
        sys.modules[_name] = None  # type: ignore[assignment]  # importing it now raises ImportError

_ROOT = Path(__file__).parent
sys.path.insert(0, str(_ROOT))


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tokenizer plus one tiny random reward model per architecture, built once per test session."""
    import tiny_models  # torch: imported only by the slow tests that need the models

    root = tmp_path_factory.mktemp("tiny_models")
    tiny_models.build_tokenizer(root / "tokenizer")
    for arch in tiny_models.ARCHITECTURES:
        tiny_models.build_model(arch, root / arch, root / "tokenizer")
    return root


# Fixtures that load a model or start a server: a test using one is slow wherever it lives.
_SLOW_FIXTURES = frozenset({"tiny_root", "serve", "serve_faulty"})
_SLOW_DIRECTORIES = ("integration", "trainers")  # a real (tiny) model; real trainer releases: slow by definition


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The fast lane does not even import the slow directories' modules (torch, transformers: seconds)."""
    if config.getoption("markexpr") == "not slow" and collection_path.is_relative_to(_ROOT):
        return any(part in _SLOW_DIRECTORIES for part in collection_path.relative_to(_ROOT).parts[:1]) or None
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        in_slow_directory = any(part in _SLOW_DIRECTORIES for part in item.path.relative_to(_ROOT).parts[:1])
        if in_slow_directory or _SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _refuse(what: str):  # type: ignore[no-untyped-def]
    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError(f"this test {what}: mark it @pytest.mark.slow (the fast lane is unit and fake-runner tests)")

    return refuse


@pytest.fixture(autouse=True)
def _slow_work_is_marked_slow(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("slow"):
        return
    try:
        import uvicorn
    except ImportError:  # the client alone: nothing to serve with
        return
    monkeypatch.setattr(uvicorn.Server, "run", _refuse("starts a server"))
    engine = sys.modules.get("r3hf_server.engine")
    if engine is not None:
        build_runner = engine.build_runner

        def fake_only(settings):  # type: ignore[no-untyped-def]
            if settings.runner != "fake":
                _refuse("loads a model")()
            return build_runner(settings)

        monkeypatch.setattr(engine, "build_runner", fake_only)
    hf = sys.modules.get("r3hf_server.runner.hf")
    if hf is not None:
        monkeypatch.setattr(hf, "load_model", _refuse("loads a model"))
