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


def test_the_runner_contract_is_complete_and_nothing_probes_for_its_parts():
    from r3hf_server.runner.base import ForwardResult, Runner

    assert {"info", "batch_policy", "encode", "forward"} <= set(dir(Runner))
    assert ForwardResult.__dataclass_params__.frozen  # type: ignore[attr-defined]
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr"):
                names = {a.value for a in node.args if isinstance(a, ast.Constant)}
                assert not names & {"batch_policy", "final_attention", "prefix_scores"}, (path, names)


def test_a_runners_batch_policy_cannot_change_after_construction():
    import pytest

    from r3hf_server.runner.fake import FakeRunner
    from r3hf_server.runner.planning import BatchPolicy

    runner = FakeRunner()
    with pytest.raises(AttributeError):
        runner.batch_policy = BatchPolicy(packed=True)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        runner.batch_policy.packed = True  # type: ignore[misc]


def test_runners_see_model_loading_settings_only_and_no_secrets():
    from pydantic import SecretStr

    from r3hf_server.settings import MODEL_LOADING_FIELDS, ModelLoadSettings, Settings

    for path in modules("runner"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("settings"):
                assert {a.name for a in node.names} <= {"ModelLoadSettings", "DEMO_MODEL_DIR"}, path
            if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "settings":
                assert node.attr in MODEL_LOADING_FIELDS or node.attr == "model_copy", (path, node.attr)
    fields = ModelLoadSettings.model_fields
    assert not [n for n, f in fields.items() if SecretStr in (f.annotation, *getattr(f.annotation, "__args__", ()))]
    loading = Settings(api_keys="k1,k2", api_keys_file="/keys").model_loading()
    assert "k1" not in repr(loading) and not {"api_keys", "api_keys_file", "host", "port"} & set(fields)


def test_the_fault_runner_is_a_test_helper_not_part_of_the_package():
    assert not (SERVICE / "runner" / "faults.py").exists()
    assert (SERVICE.parents[1] / "tests" / "fault_runner.py").exists()


def _module_name(path: Path) -> str:
    parts = ["r3hf_server", *path.relative_to(SERVICE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> set[str]:
    """Modules of r3hf_server that ``path`` imports at run time (anywhere, but not under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(child) for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for child in ast.walk(node)
    }
    package = ["r3hf_server", *path.relative_to(SERVICE).parent.parts]
    names = set()
    for node in ast.walk(tree):
        if id(node) in typing_only or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            base = ".".join([*package[: len(package) - node.level + 1]] if node.level else [])
            module = ".".join(filter(None, [base, node.module or ""]))
            candidates = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        names.update(c for c in candidates if c.startswith("r3hf_server"))
    return names


def test_no_import_cycles():
    graph = {_module_name(path): set() for path in modules()}
    for path in modules():
        graph[_module_name(path)] = {m for m in _runtime_imports(path) if m in graph} - {_module_name(path)}

    def cycle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return [*trail, start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
        return None

    cycles = {m: c for m in graph if (c := cycle_from(m)) and not m.endswith("r3hf_server")}
    assert not cycles, next(iter(cycles.values()))
