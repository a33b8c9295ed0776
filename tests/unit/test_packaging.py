"""`pip install .` is the thin client: it neither installs nor imports the server's heavy dependencies."""

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
