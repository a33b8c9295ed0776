"""Build the runner that ``--runner`` names: the real Hugging Face model, or the deterministic fake."""

from __future__ import annotations

from ..settings import Settings
from .base import Runner


def build_runner(settings: Settings) -> Runner:
    if settings.runner == "fake":
        from .fake import FakeRunner

        return FakeRunner()
    from .hf import build_hf_runner  # torch is imported only when a real model is served

    return build_hf_runner(settings)
