"""The Dockerfile, checked without a Docker engine: its install steps match setup.sh's (which CI runs), the build
context it sees yields a wheel with the demo model inside, and its HEALTHCHECK command works against a real server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from deploy_helpers import ROOT
from live_server import free_port, live_server
from r3hf_server.api.app import create_app
from r3hf_server.runner.fake import FakeRunner
from r3hf_server.settings import Settings

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions(keyword: str) -> list[str]:
    """Arguments of every instruction with this keyword, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.upper().startswith(keyword + " ")]


def test_torch_pin_and_extra_match_setup_sh():
    setup = (ROOT / "scripts/setup.sh").read_text()
    (setup_spec,) = re.findall(r'R3HF_TORCH_SPEC:-(torch==[\w.]+)', setup)
    assert f"ARG TORCH_SPEC={setup_spec}" in DOCKERFILE
    assert setup_spec in (ROOT / "README.md").read_text()
    assert '.[server,' in setup and 'pip install --no-cache-dir ".[server]"' in DOCKERFILE


def test_runtime_stage_runs_as_uid_1000_and_listens_on_all_interfaces():
    assert instructions("USER")[-1] == "1000:1000"
    env = " ".join(instructions("ENV"))
    assert "R3HF_HOST=0.0.0.0" in env and "R3HF_PORT=8000" in env
    assert "HF_HUB_OFFLINE=1" in env and "HF_HOME=/models/" in env
    assert instructions("EXPOSE") == ["8000"]
    assert json.loads(instructions("VOLUME")[0]) == ["/models"]
    assert json.loads(instructions("ENTRYPOINT")[0]) == ["r3hf", "serve"]


def test_both_variants_exist_and_cpu_is_the_default():
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", DOCKERFILE, re.M))
    assert {"base-cpu", "base-gpu", "torch-cpu", "torch-gpu", "builder", "runtime"} <= stages
    assert "ARG VARIANT=cpu" in DOCKERFILE and "runtime-ubuntu" in DOCKERFILE
    assert "download.pytorch.org/whl/cpu" in DOCKERFILE


def build_context(tmp_path: Path) -> Path:
    """The files .dockerignore lets into the build context (it is an allow-list: `**` then `!path` lines)."""
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    assert "**" in lines, ".dockerignore should exclude everything by default"
    context = tmp_path / "context"
    for allowed in (line[1:].rstrip("/") for line in lines if line.startswith("!")):
        source = ROOT / allowed
        target = context / allowed
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    return context


@pytest.mark.slow
def test_the_build_context_installs_the_server_with_the_demo_model(tmp_path):
    context = build_context(tmp_path)
    assert not (context / ".venv").exists() and not (context / ".git").exists()
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path),
         str(context)], capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("r3hf-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("r3hf_server/cli.py", "r3hf_server/demo_model/model.safetensors",
                     "r3hf_server/demo_model/config.json", "r3hf_server/demo_model/tokenizer.json", "r3hf_client/wire.py"):
        assert required in names, f"{required} would be missing from the image"


def healthcheck_command() -> list[str]:
    (healthcheck,) = instructions("HEALTHCHECK")
    assert "--start-period=" in healthcheck
    return json.loads(healthcheck.split("CMD", 1)[1])


@pytest.mark.slow  # starts a server
def test_healthcheck_command_passes_on_a_live_server_and_fails_without_one():
    command = healthcheck_command()
    assert command[0] == "python3" and "/health" in command[-1]
    local = [sys.executable, *command[1:]]  # the image's python3 is its venv's; here it is this venv's
    app = create_app(Settings(runner="fake"), FakeRunner())
    with live_server(app) as base_url:
        port = base_url.rsplit(":", 1)[1]
        assert subprocess.run(local, env={"R3HF_PORT": port}, timeout=30).returncode == 0
    closed = subprocess.run(local, env={"R3HF_PORT": str(free_port())}, capture_output=True, timeout=30)
    assert closed.returncode != 0
