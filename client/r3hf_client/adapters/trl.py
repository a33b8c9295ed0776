"""TRL ``reward_funcs`` for GRPOTrainer and RLOOTrainer.

    from r3hf_client.adapters.trl import make_reward_func
    trainer = GRPOTrainer(model=..., reward_funcs=[make_reward_func("http://rm:8000")], ...)

TRL calls each reward function with keyword arguments ``prompts``, ``completions`` (and ``completion_ids``, the
dataset's columns, ...) and expects ``list[float]``. Standard-format samples (strings) are scored as the text form,
conversational ones (message lists) as the chat form with the RM's own chat template. TRL recognises async reward
functions only when they are ``async def`` functions (not objects with an async ``__call__``), so both factories
return plain functions; their ``__name__`` labels TRL's logs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..async_client import AsyncRewardClient
from ..client import RewardClient


def sample_item(prompt: Any, completion: Any) -> dict[str, Any]:
    """One TRL sample as a request item: text form for strings, chat form for message lists."""
    if isinstance(prompt, str) and isinstance(completion, str):
        return {"prompt": prompt, "response": completion}
    history = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    reply = [{"role": "assistant", "content": completion}] if isinstance(completion, str) else list(completion)
    return {"messages": [{"role": m["role"], "content": m["content"]} for m in history + reply]}


def make_reward_func(
    client: RewardClient | str | Sequence[str], *, name: str = "r3hf_reward", truncation: str = "left",
    **client_options: Any,
) -> Callable[..., list[float]]:
    """A synchronous TRL reward function backed by ``client`` (or a new ``RewardClient`` on these URLs)."""
    reward_client = client if isinstance(client, RewardClient) else RewardClient(client, **client_options)

    def reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        items = [sample_item(p, c) for p, c in zip(prompts, completions, strict=True)]
        return [r.score for r in reward_client.score(items, truncation=truncation).results]

    reward.__name__ = reward.__qualname__ = name
    return reward


def make_async_reward_func(
    base_url: str | Sequence[str], *, name: str = "r3hf_reward", truncation: str = "left", **client_options: Any
) -> Callable[..., Any]:
    """An ``async def`` TRL reward function; TRL awaits several of them concurrently.

    The ``AsyncRewardClient`` is created on the first call, inside the event loop TRL runs it in (an httpx async
    client must not outlive or cross its loop).
    """
    clients: dict[int, AsyncRewardClient] = {}

    async def reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        import asyncio

        loop_id = id(asyncio.get_running_loop())
        if loop_id not in clients:
            clients[loop_id] = AsyncRewardClient(base_url, **client_options)
        items = [sample_item(p, c) for p, c in zip(prompts, completions, strict=True)]
        return [r.score for r in (await clients[loop_id].score(items, truncation=truncation)).results]

    reward.__name__ = reward.__qualname__ = name
    return reward
