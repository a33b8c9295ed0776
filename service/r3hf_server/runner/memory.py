"""Recognise a device out-of-memory error, and give the allocator's cache back after one.

Kept free of a torch import: the batcher uses it with any runner (the fake one has no torch), and tests inject an
out-of-memory error simply by raising one whose type or message matches.
"""

from __future__ import annotations

import sys

# What torch and its allocators say when an allocation fails: CUDA, ROCm (same wording), the CPU allocator, MPS.
_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory")


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    if type(error).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError (torch.OutOfMemoryError)
        return True
    return isinstance(error, RuntimeError) and any(m in str(error).lower() for m in _MESSAGES)


def release_cached_memory() -> None:
    """Return cached blocks to the device so the retry starts from a clean allocator (a no-op without CUDA)."""
    torch = sys.modules.get("torch")  # never import it here: a runner that uses torch has imported it already
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
