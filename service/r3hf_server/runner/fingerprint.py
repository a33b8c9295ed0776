"""A short hash of exactly what scores: config, weights, score head, tokenizer, chat template, label index, dtype."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_EDGE_BYTES = 8 << 20  # hash each weight file's size, first and last 8 MiB: cheap even for 100 GB checkpoints


def weight_files(model_dir: Path | None) -> list[Path]:
    if model_dir is None or not model_dir.is_dir():
        return []
    return sorted(p for p in model_dir.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))


def _hash_file_edges(digest: Any, path: Path) -> None:
    size = path.stat().st_size
    digest.update(f"{path.name}:{size}".encode())
    with path.open("rb") as handle:
        digest.update(handle.read(_EDGE_BYTES))
        if size > 2 * _EDGE_BYTES:
            handle.seek(size - _EDGE_BYTES)
            digest.update(handle.read(_EDGE_BYTES))


def model_fingerprint(
    *, model_dir: Path | None, config_json: str, head_bytes: bytes, tokenizer_json: str, chat_template: str | None,
    label_index: int, dtype: str, normalization: tuple[float, float] | None,
) -> str:
    """The score head is hashed whole (it is what makes a reward model), the rest of the weights by their edges."""
    digest = hashlib.sha256()
    for path in weight_files(model_dir):
        _hash_file_edges(digest, path)
    digest.update(config_json.encode())
    digest.update(head_bytes)
    digest.update(tokenizer_json.encode())
    settings = {"chat_template": chat_template, "label_index": label_index, "dtype": dtype, "norm": normalization}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:16]
