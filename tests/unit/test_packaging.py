"""`pip install .` is the thin client: it neither installs nor imports the server's heavy dependencies."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "fastapi", "uvicorn", "starlette")


def test_client_dependencies_exclude_the_server_stack():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {dep.split(">")[0].split("=")[0].split("<")[0].strip().lower() for dep in project["dependencies"]}
    assert names.isdisjoint(HEAVY)
    assert project["scripts"]["r3hf"] == "r3hf_server.cli:main"


def test_importing_the_client_imports_no_server_dependency():
    code = (
        "import sys, r3hf_client, r3hf_client.wire, r3hf_client.errors\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_client_never_imports_the_server_package():
    for path in (ROOT / "client").rglob("*.py"):
        assert "r3hf_server" not in path.read_text(), path


def imports_of(path: Path) -> set[str]:
    """Module names a file imports; relative imports keep their dots (".api.app")."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def test_layers_import_downwards_only():
    service = ROOT / "service" / "r3hf_server"
    entry_points = {"cli.py", "__main__.py"}  # they sit above the api and start it
    above_api = {"api", "commands"}  # commands/: r3hf explain and score, clients of the api (in-process or not)
    for path in service.rglob("*.py"):
        if above_api & set(path.relative_to(service).parts) or path.name in entry_points:
            continue
        imported = imports_of(path)
        assert not any(m.startswith(("fastapi", "starlette", "r3hf_client.wire")) for m in imported), path
        assert not any(m.lstrip(".").startswith("api") for m in imported), path
    for path in (service / "runner").rglob("*.py"):
        assert not any(m.lstrip(".").startswith(("batcher", "engine")) for m in imports_of(path)), path
