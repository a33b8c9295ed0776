"""The README's front door: `r3hf serve` on the demo model answers its curl examples with the output it shows, and
its Python examples run against it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from live_server import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = re.compile(r"```bash\n(curl [^`]*?)```\s*\n(?:[^`]*?\n)?```json\n(.*?)```", re.S)


def readme_examples() -> list[tuple[str, str]]:
    return EXAMPLE.findall((ROOT / "README.md").read_text())


@pytest.fixture(scope="module")
def demo_server():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "r3hf_server", "serve", "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout_s=600)  # a loaded 2-core CI box can take minutes to import
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def assert_matches(got, want, path="$"):
    if isinstance(want, float) or isinstance(got, float):
        assert got == pytest.approx(want, abs=1e-4), path
    elif isinstance(want, dict):
        assert set(got) == set(want), path
        for key in want:
            assert_matches(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_matches(g, w, f"{path}[{i}]")
    else:
        assert got == want, path


def test_the_readme_has_curl_examples():
    assert len(readme_examples()) >= 2


@pytest.mark.parametrize("index", range(len(readme_examples())))
def test_readme_curl_example_prints_what_the_readme_shows(demo_server, index):
    command, shown = readme_examples()[index]
    command = command.replace("127.0.0.1:8000", f"127.0.0.1:{demo_server}").replace("\\\n", " ")
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, check=True).stdout
    assert_matches(json.loads(out), json.loads(shown))


def readme_python_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_the_readme_has_a_client_example():
    assert any("RewardClient" in code for code in readme_python_examples())


@pytest.mark.parametrize("index", range(len(readme_python_examples())))
def test_readme_python_example_runs_against_the_demo_server(demo_server, index):
    code = readme_python_examples()[index].replace("127.0.0.1:8000", f"127.0.0.1:{demo_server}")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_documents_derived_from_code_are_current():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "docs_sync.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
