"""Real trainer releases (.venv-trainers, built by scripts/setup_trainers.sh) driving a real `r3hf serve` on
127.0.0.1. Each driver in drivers/ runs in the trainer venv as a subprocess and prints one JSON report on its last
line; the tests here check it against the server, asked directly with the client."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from readiness import free_port, poll_ready

ROOT = Path(__file__).resolve().parents[2]
TRAINERS_VENV = Path(os.environ.get("R3HF_TRAINERS_VENV", ROOT / ".venv-trainers"))
DRIVERS = Path(__file__).parent / "drivers"
DRIVER_TIMEOUT_S = 900  # a driver takes 0.5-3 min; this bound is for a hung one


def trainer_venv_problem() -> str | None:
    """Why .venv-trainers cannot be used, or None. The stamp is the hash of the setup script that built it."""
    python, stamp = TRAINERS_VENV / "bin" / "python", TRAINERS_VENV / ".r3hf-setup-stamp"
    if not python.exists() or not stamp.exists():
        return f"{TRAINERS_VENV} is not built: run `bash scripts/setup_trainers.sh` (scripts/test.sh does)"
    want = hashlib.sha256((ROOT / "scripts" / "setup_trainers.sh").read_bytes()).hexdigest()
    if stamp.read_text().strip() != want:
        return f"{TRAINERS_VENV} was built by another version of scripts/setup_trainers.sh: run it again"
    return None


@pytest.fixture(scope="session")
def trainers_python() -> Path:
    problem = trainer_venv_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"trainer tests cannot be skipped in CI: {problem}")
        pytest.skip(problem)
    return TRAINERS_VENV / "bin" / "python"


@pytest.fixture(scope="session")
def rm_url() -> Iterator[str]:
    """`r3hf serve` with the embedded demo reward model, as a separate process on an ephemeral loopback port."""
    port = free_port()
    command = [sys.executable, "-m", "r3hf_server", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process, timeout_s=600)  # a loaded 2-core machine took 72 s (import, probe, warm-up)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until_ready(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    if not poll_ready(url, lambda: process.poll() is None, timeout_s, poll_s=0.2):
        raise RuntimeError(f"r3hf serve exited with {process.returncode}: {process.stderr.read()[-2000:]}")


def keep_report(script: str, report: dict, seconds: float) -> None:
    """With R3HF_TRAINER_REPORT_DIR set, each driver's report is written there (tests/trainers/summarize.py reads
    them), with the driver's wall time."""
    folder = os.environ.get("R3HF_TRAINER_REPORT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{Path(script).stem}.json").write_text(json.dumps({**report, "seconds": seconds}))


@pytest.fixture(scope="session")
def run_driver(trainers_python: Path, rm_url: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., dict]:
    """run_driver("trl_grpo.py", *args) -> the driver's JSON report; its stderr tail explains a failure."""
    workdir = tmp_path_factory.mktemp("trainers")

    def run(script: str, *args: str) -> dict:
        started = time.monotonic()
        env = {**os.environ, "R3HF_CLIENT_URL": rm_url, "TOKENIZERS_PARALLELISM": "false",
               "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled"}
        env.pop("PYTHONPATH", None)  # the trainer venv must stand on its own
        done = subprocess.run([str(trainers_python), str(DRIVERS / script), str(workdir), *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=DRIVER_TIMEOUT_S)
        assert done.returncode == 0, f"{script} failed ({done.returncode}):\n{done.stderr[-4000:]}"
        report = json.loads(done.stdout.strip().splitlines()[-1])
        keep_report(script, report, time.monotonic() - started)
        return report

    return run
