"""Rendered manifests and the offline checkers (installed by scripts/setup_deploy_tools.sh into .venv-tools).

A missing checker skips its test on a developer's machine, with the command that installs it; under CI (CI set) it
fails instead, so a broken install can never turn the deployment checks silently green.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = ROOT / ".venv-tools" / "bin"
OVERLAYS = ("cpu-demo", "gpu")


def find_tool(name: str) -> str:
    """Path of a checker: .venv-tools first (what the setup script installs), then PATH."""
    local = TOOLS_BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed; run: bash scripts/setup_deploy_tools.sh"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI runs every deployment check)")
    pytest.skip(reason)


def run_tool(args: list[str], timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)


def render_overlays() -> dict[str, str]:
    """Each overlay rendered by `kubectl kustomize`, as text."""
    kubectl = find_tool("kubectl")
    out = {}
    for overlay in OVERLAYS:
        result = run_tool([kubectl, "kustomize", f"k8s/overlays/{overlay}"])
        assert result.returncode == 0, f"kubectl kustomize k8s/overlays/{overlay} failed:\n{result.stderr}"
        out[overlay] = result.stdout
    return out


def one(docs: list[dict], kind: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]
