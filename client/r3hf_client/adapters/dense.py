"""Right-padded dense reward tensors and masks for custom PPO loops (numpy or torch, imported only when used)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

from r3hf_client.projection import PolicyTokenRewards
from r3hf_client.wire import TokenRewardsResponse

Rows = Union[TokenRewardsResponse, Sequence[PolicyTokenRewards], Sequence[Sequence[float]]]


def reward_rows(source: Rows) -> list[list[float]]:
    """Per-token rewards of each item, from a ``/token_rewards`` response, projections, or plain lists."""
    if isinstance(source, TokenRewardsResponse):
        return [list(r.token_rewards) for r in source.results]  # type: ignore[arg-type]
    return [list(row.token_rewards) if isinstance(row, PolicyTokenRewards) else list(row) for row in source]


def dense_rewards(source: Rows, *, length: int | None = None, backend: str = "torch") -> tuple[Any, Any]:
    """``(rewards, mask)``, both ``(batch, length)``: row i holds item i's rewards from column 0, zeros after.

    ``length`` defaults to the longest row; a longer row is an error (it would silently lose reward).
    ``backend`` is ``"torch"`` (float32 and bool tensors) or ``"numpy"``.
    """
    rows = reward_rows(source)
    width = max((len(row) for row in rows), default=0) if length is None else length
    too_long = [i for i, row in enumerate(rows) if len(row) > width]
    if too_long:
        raise ValueError(f"item {too_long[0]} has {len(rows[too_long[0]])} token rewards, more than length={width}")
    if backend == "numpy":
        import numpy as np

        rewards, mask = np.zeros((len(rows), width), dtype=np.float32), np.zeros((len(rows), width), dtype=bool)
    elif backend == "torch":
        import torch

        rewards, mask = torch.zeros(len(rows), width, dtype=torch.float32), torch.zeros(len(rows), width, dtype=torch.bool)
    else:
        raise ValueError(f'backend must be "torch" or "numpy", not {backend!r}')
    for i, row in enumerate(rows):
        if row:
            rewards[i, : len(row)] = row if backend == "numpy" else torch.tensor(row, dtype=torch.float32)
            mask[i, : len(row)] = True
    return rewards, mask
