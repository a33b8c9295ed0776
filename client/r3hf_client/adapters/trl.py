"""TRL ``reward_funcs`` for GRPOTrainer and RLOOTrainer (tested with TRL 1.16.0), and the dense-credit trainer.

    from r3hf_client.adapters.trl import make_reward_func
    trainer = GRPOTrainer(model=..., reward_funcs=[make_reward_func("http://rm:8000")], ...)

TRL calls each reward function with keyword arguments ``prompts``, ``completions`` (and ``completion_ids``, the
dataset's columns, ...) and expects ``list[float]``. Standard-format samples (strings) are scored as the text form,
conversational ones (message lists) as the chat form with the RM's own chat template. Async reward functions are
awaited concurrently (``async def`` functions, and since TRL 1.16 also objects with an async ``__call__``); both
factories return plain functions, whose ``__name__`` labels TRL's logs.

Dense credit: ``R3HFDenseReward`` with ``R3HFDenseGRPOTrainer`` (``trl_dense``; trl is imported only when the
trainer class is first asked for, so this module stays importable without trl).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from r3hf_client.adapters.trl_dense import R3HFDenseReward
from r3hf_client.async_client import AsyncRewardClient
from r3hf_client.client import RewardClient

__all__ = ["R3HFDenseGRPOTrainer", "R3HFDenseReward", "make_async_reward_func", "make_reward_func", "sample_item"]


def __getattr__(name: str) -> Any:
    if name == "R3HFDenseGRPOTrainer":  # built on first use: it subclasses trl's GRPOTrainer
        from r3hf_client.adapters.trl_trainer import build_trainer_class

        return build_trainer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
