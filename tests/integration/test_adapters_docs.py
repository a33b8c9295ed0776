"""Every python example in docs/adapters.md and docs/client.md runs against the demo reward model on 127.0.0.1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from r3hf_server.settings import DEMO_MODEL_DIR

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("adapters.md", "client.md")
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def examples() -> list[tuple[str, int, str]]:
    found = []
    for name in DOCS:
        for index, code in enumerate(PYTHON_BLOCK.findall((ROOT / "docs" / name).read_text())):
            found.append((name, index, code))
    return found


def test_the_docs_have_an_example_per_adapter():
    text = (ROOT / "docs" / "adapters.md").read_text()
    for module in ("adapters.openrlhf", "adapters.trl", "adapters.verl", "adapters.verl_dense", "adapters.areal",
                   "adapters.dense", "/get_reward", "/slime/reward"):
        assert module in text


@pytest.mark.slow
@pytest.mark.parametrize(("doc", "index", "code"), examples(), ids=[f"{d}-{i}" for d, i, _ in examples()])
def test_doc_example_runs(serve, monkeypatch, doc, index, code):
    base_url = serve(DEMO_MODEL_DIR)
    monkeypatch.setenv("R3HF_CLIENT_URL", base_url)
    exec(compile(code.replace("http://127.0.0.1:8000", base_url), f"{doc}[{index}]", "exec"), {})
