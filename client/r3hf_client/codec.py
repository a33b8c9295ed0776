"""Base64 little-endian float32 arrays: the compact encoding of per-token values (``encoding_format: "base64"``).

Pure standard library (``array``), so neither side needs numpy for it.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Sequence


def encode_float32_base64(values: Sequence[float]) -> str:
    packed = array("f", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def decode_float32_base64(text: str) -> list[float]:
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 4:
        raise ValueError(f"a base64 float32 array must hold a multiple of 4 bytes, got {len(raw)}")
    values = array("f")
    values.frombytes(raw)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()
