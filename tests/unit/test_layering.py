"""The layers import downwards only, and the engine is the api's only door below it.

api (FastAPI routers, wire models) -> engine (admission, futures, serving state) -> batcher -> runner.
"""

from __future__ import annotations

import ast
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "service" / "r3hf_server"
ENTRY_POINTS = {"cli.py", "__main__.py"}  # they sit above the api and start it
ABOVE_API = {"api", "commands"}  # commands/: r3hf explain and score, clients of the api (in-process or not)


def imports_of(path: Path) -> set[str]:
    """Module names a file imports, made absolute within r3hf_server ("r3hf_server.api.app")."""
    package = ["r3hf_server", *path.relative_to(SERVICE).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            names.add(".".join([*base, node.module] if node.module else base))
    return names


def modules(*parts: str) -> list[Path]:
    return sorted((SERVICE.joinpath(*parts)).rglob("*.py"))


def test_nothing_below_the_api_imports_fastapi_the_wire_models_or_the_api():
    for path in modules():
        if ABOVE_API & set(path.relative_to(SERVICE).parts) or path.name in ENTRY_POINTS:
            continue
        imported = imports_of(path)
        assert not any(m.startswith(("fastapi", "starlette", "r3hf_client.wire")) for m in imported), path
        assert not any(m.startswith("r3hf_server.api") for m in imported), path


def test_the_runner_imports_neither_the_batcher_nor_the_engine():
    for path in modules("runner"):
        assert not any(m.startswith(("r3hf_server.batcher", "r3hf_server.engine")) for m in imports_of(path)), path


def test_the_api_reaches_nothing_below_the_engine():
    for path in modules("api"):
        imported = imports_of(path)
        assert not any(m.startswith(("r3hf_server.batcher", "r3hf_server.runner")) for m in imported), path
        touched = {node.attr for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Attribute)}
        assert not touched & {"batcher", "_batcher", "runner", "batch_policy"}, (path, touched)


def test_api_modules_share_only_public_helpers():
    for path in modules("api"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                assert not private, (path, private)


def test_only_the_engine_tells_the_batcher_whether_more_items_are_coming():
    """The batcher's wait-for-company signal is the engine's, passed at construction; nobody patches it later."""
    for path in modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                targets = [t.attr for t in node.targets if isinstance(t, ast.Attribute)]
                assert "more_items_coming" not in targets, path
        builds_batcher = any(
            isinstance(node, ast.Call) and getattr(node.func, "id", None) == "TokenBudgetBatcher"
            for node in ast.walk(tree)
        )
        assert not builds_batcher or path.name == "engine.py", path


def test_the_engine_offers_what_the_api_needs():
    from r3hf_server.engine import RewardEngine

    for name in ("ready", "alive", "stopping", "queue_depth"):
        assert isinstance(getattr(RewardEngine, name), property), name
    for name in ("open", "stop", "fail_waiting", "request_arrived", "request_done", "token_rewards", "score"):
        assert callable(getattr(RewardEngine, name)), name
