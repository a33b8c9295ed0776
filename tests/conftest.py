from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import tiny_models  # noqa: E402


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tokenizer plus one tiny random reward model per architecture, built once per test session."""
    root = tmp_path_factory.mktemp("tiny_models")
    tiny_models.build_tokenizer(root / "tokenizer")
    for arch in tiny_models.ARCHITECTURES:
        tiny_models.build_model(arch, root / arch, root / "tokenizer")
    return root
