"""Checks on a model's files made before any weights load, so a bad path or a broken file fails in seconds with the
reason, not after minutes of loading (or with a hub repo-id syntax error for a local path with a typo)."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from ..errors import ModelRefusedError

# Hub ids are "name" or "namespace/name" of letters, digits, "-", "_" and "." (huggingface_hub's own rule).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json", "pytorch_model.bin.index.json")
_SAFETENSORS_HEADER_LIMIT = 100 * 1024 * 1024


def looks_like_local_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~", ".")) or "\\" in model or model.count("/") > 1


def check_model_source(model: str, what: str = "--model") -> Path | None:
    """The local directory ``model`` names (checked), or None for a hub id (checked when it downloads)."""
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelRefusedError(f"{what} {model} is a file; pass the directory that holds config.json")
        return path
    if looks_like_local_path(model) or not _HUB_ID.match(model):
        raise ModelRefusedError(f"{what} {model}: no such directory (check the path; a hub id looks like org/name)")
    return None


def check_model_directory(path: Path) -> None:
    """A transformers checkpoint: a readable config.json and complete weight files."""
    config = path / "config.json"
    if not config.is_file():
        listing = sorted(p.name for p in path.iterdir())[:8]
        contents = f"it holds {listing}" if listing else "it is empty"
        raise ModelRefusedError(f"{path} has no config.json ({contents}): pass a saved transformers model directory")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelRefusedError(f"{config} is not valid JSON ({exc}): restore the model's config.json") from None
    weights = [p for pattern in _WEIGHT_PATTERNS for p in path.glob(pattern)]
    if not weights:
        raise ModelRefusedError(
            f"{path} has a config.json but no weights (*.safetensors or pytorch_model*.bin): copy the weight files"
        )
    for file in weights:
        if file.name.endswith(".safetensors"):
            check_safetensors_file(file)


def check_safetensors_file(file: Path) -> None:
    """The header's tensor offsets must end exactly at the end of the file: catches a truncated copy or download."""
    size = file.stat().st_size
    try:
        with file.open("rb") as handle:
            (header_length,) = struct.unpack("<Q", handle.read(8))
            if header_length > min(size - 8, _SAFETENSORS_HEADER_LIMIT):
                raise ValueError("header length beyond the file")
            header = json.loads(handle.read(header_length))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise ModelRefusedError(f"{file} is not a readable safetensors file ({exc}): copy it again") from None
    data_end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    expected = 8 + header_length + data_end
    if size != expected:
        raise ModelRefusedError(
            f"{file} is truncated or corrupt: {size} bytes on disk, its header describes {expected}: copy it again"
        )


def checkpoint_tensor_shapes(path: Path | None) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from the safetensors headers (no weights read); empty when unavailable."""
    shapes: dict[str, tuple[int, ...]] = {}
    if path is None:
        return shapes
    for file in path.glob("*.safetensors"):
        try:
            with file.open("rb") as handle:
                (header_length,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(header_length))
        except (OSError, struct.error, ValueError):
            continue
        shapes.update({k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"})
    return shapes
