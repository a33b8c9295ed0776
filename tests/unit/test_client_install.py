"""`pip install .` alone, in a fresh venv: the client imports and works, and torch is neither installed nor imported."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SMOKE = """
import importlib.util, sys, httpx
import r3hf_client
from r3hf_client import RewardClient
from r3hf_client.projection import project_rewards
from r3hf_client.adapters import openrlhf, trl, verl, areal, dense, protocols

def handler(request):
    return httpx.Response(200, json={"model": "m", "fingerprint": "f", "results": [
        {"index": 0, "score": 1.0, "prompt_score": 0.0, "num_response_tokens": 1, "truncated": False,
         "template_changed_response": False}],
        "usage": {"num_items": 1, "prompt_tokens": 1, "response_tokens": 1, "total_tokens": 2}})

with RewardClient("http://rm", transport=httpx.MockTransport(handler)) as client:
    assert client.score([{"prompt": "a", "response": "b"}]).results[0].score == 1.0
assert project_rewards([1.0, 2.0], [(0, 1), (1, 2)], [(0, 2)], 2) == [3.0]
heavy = [m for m in ("torch", "transformers", "fastapi", "uvicorn", "starlette", "numpy") if m in sys.modules]
assert not heavy, heavy
missing = [m for m in ("torch", "transformers", "fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
assert missing == ["torch", "transformers", "fastapi", "uvicorn"], missing
print("ok")
"""


def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_the_client_installs_alone_and_never_brings_torch(tmp_path):
    wheel_dir = tmp_path / "wheels"
    built = run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                "--wheel-dir", str(wheel_dir), str(ROOT))
    assert built.returncode == 0, built.stderr
    env = tmp_path / "fresh"
    venv.create(env, with_pip=True)
    python = str(env / "bin" / "python")
    wheel = next(wheel_dir.glob("r3hf-*.whl"))
    pip = (python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check")
    installed = run(*pip, str(wheel))  # with its declared dependencies, from the index or pip's cache
    if installed.returncode != 0:
        pytest.skip(f"pip could not install the project's dependencies (no index reachable?): {installed.stderr[-300:]}")
    smoke = run(python, "-c", SMOKE, timeout=60)
    assert smoke.returncode == 0 and smoke.stdout.strip() == "ok", smoke.stderr
