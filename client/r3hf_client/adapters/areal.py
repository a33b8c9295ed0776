"""AReaL: ``reward_fn(prompt, completions, prompt_ids, completion_ids, **kwargs) -> float``.

AReaL calls it in a process pool (it must be a picklable module-level function) with a 15 s timeout, and after
repeated timeouts it silently uses 0. So this adapter bounds each call by a 12 s deadline (``R3HF_CLIENT_DEADLINE``
overrides) and raises instead of returning a made-up number. The server comes from ``R3HF_CLIENT_URL``.
"""

from __future__ import annotations

from typing import Any

from r3hf_client.adapters.settings import ClientSettings, shared_client

AREAL_TIMEOUT_S = 10.0
AREAL_DEADLINE_S = 12.0


def reward_fn(prompt: str, completions: str, prompt_ids: Any = None, completion_ids: Any = None, **kwargs: Any) -> float:
    """R(x, y) of the text form ``prompt`` + ``completions`` (AReaL's name for the one completion's text)."""
    settings = ClientSettings.from_env(timeout=AREAL_TIMEOUT_S, deadline=AREAL_DEADLINE_S)
    result = shared_client(settings).score([{"prompt": prompt, "response": completions}], truncation="left")
    return result.results[0].score
