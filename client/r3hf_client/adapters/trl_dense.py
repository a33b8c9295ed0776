"""Dense R3HF credit in TRL's GRPOTrainer: per-token advantages of shape (B, T) from the server's per-token rewards.

    from r3hf_client.adapters.trl import R3HFDenseGRPOTrainer, R3HFDenseReward
    dense = R3HFDenseReward("http://rm:8000", redistribution="r3hf", beta=1.0)
    trainer = R3HFDenseGRPOTrainer(model=..., reward_funcs=[dense], args=GRPOConfig(...), train_dataset=...)

``R3HFDenseReward`` is an ordinary TRL reward function (it returns the sequence score R(x, y), which TRL logs as
its reward) that also keeps the per-token rewards of the completions it scored, projected onto the policy's sampled
tokens (EOS included). ``R3HFDenseGRPOTrainer`` replaces GRPO's one advantage per completion by one per token:

    G_i,t = sum_{k >= t} w * r_i,k  (+ the other reward functions' weighted sum, on the last token)
    A_i,t = (G_i,t - mean_g G_j,0) / (std_g G_j,0 + 1e-4)

With R3HF rewards G_i,t = w * (R(x, y_i) - R(x, y_i,<t)): the return-to-go with gamma = 1. The baseline and scale are
the group's (``scale_rewards="group"``; ``"batch"`` uses the batch std, ``"none"`` no scaling), so A_i,0 is GRPO's
advantage of the summed reward and A_i,t = A_i,0 - w * (R(x, y_i,<t) - R(x, empty)) / std: a token is credited
only with the reward earned from it on. A constant baseline keeps the estimate unbiased.

The trainer class is built on first access, so importing this module (or ``r3hf_client.adapters.trl``) does not
import trl or torch.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

from r3hf_client.client import RewardClient
from r3hf_client.projection import PolicyTokenRewards, project_result
from r3hf_client.token_bytes import policy_byte_spans

_STD_EPS = 1e-4  # GRPOTrainer's own epsilon, so A_i,0 matches its advantage exactly


class R3HFDenseReward:
    """A TRL reward function returning R(x, y) that keeps each completion's per-token rewards for the trainer.

    - ``client``: a ``RewardClient``, or the URL(s) to build one with ``client_options``.
    - ``redistribution`` (``"r3hf"``, ``"uniform"``, ``"attention"``, ``"sparse"``), ``beta`` and ``baseline`` are
      the server's ``/token_rewards`` options; None keeps the server's default.
    - Text prompts are scored in the text form, conversational ones (message lists) with the RM's chat template.
    - The policy tokenizer is bound by ``R3HFDenseGRPOTrainer``; the RM's per-token rewards are projected onto the
      policy's sampled ids (``r3hf_client.projection``), so the two tokenizers may differ. A completion whose tokens
      cannot be aligned gets its whole reward on its last token (a sparse reward), counted in
      ``r3hf/aligned_fraction``.
    """

    def __init__(
        self, client: RewardClient | str | Sequence[str], *, redistribution: str | None = "r3hf",
        beta: float | None = None, baseline: str | None = None, truncation: str = "left", name: str = "r3hf_dense",
        **client_options: Any,
    ) -> None:
        self.client = client if isinstance(client, RewardClient) else RewardClient(client, **client_options)
        self.options = {"redistribution": redistribution, "beta": beta, "baseline": baseline, "truncation": truncation}
        self.__name__ = name  # TRL labels its reward logs with it
        self.tokenizer: Any = None
        self._last: tuple[list[list[int]], list[PolicyTokenRewards]] | None = None
        self._lock = threading.Lock()

    def bind(self, tokenizer: Any) -> None:
        """The policy's tokenizer (a processor's inner tokenizer is used)."""
        self.tokenizer = getattr(tokenizer, "tokenizer", tokenizer)

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Sequence[int]],
        log_metric: Any = None, **kwargs: Any,
    ) -> list[float]:
        projected = self.policy_token_rewards(prompts, completion_ids)
        with self._lock:
            self._last = ([list(ids) for ids in completion_ids], projected)
        if log_metric is not None and projected:
            log_metric("r3hf/aligned_fraction", sum(p.aligned for p in projected) / len(projected))
            log_metric("r3hf/prompt_score", sum(p.prompt_score for p in projected) / len(projected))
        return [p.score for p in projected]

    def policy_token_rewards(
        self, prompts: Sequence[Any], completion_ids: Sequence[Sequence[int]]
    ) -> list[PolicyTokenRewards]:
        """One reward per sampled policy token of each completion (EOS included), summing to the RM's total."""
        if self.tokenizer is None:
            raise RuntimeError("R3HFDenseReward has no policy tokenizer: use it with R3HFDenseGRPOTrainer or bind()")
        # Decoded here, not taken from TRL's completions, so the text is exactly what the sampled ids spell.
        texts = [self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
                 for ids in completion_ids]
        items = [scoring_item(p, t) for p, t in zip(prompts, texts, strict=True)]
        answer = self.client.token_rewards(items, return_tokens=True, encoding_format="float", **self.options)
        return [
            project_result(result, text, policy_byte_spans(text, ids, self.tokenizer), len(ids))
            for result, text, ids in zip(answer.results, texts, completion_ids, strict=True)
        ]

    def take_rows(self, completion_ids: Sequence[Sequence[int]]) -> list[PolicyTokenRewards]:
        """The per-token rewards of the last call, checked against the completions the trainer holds."""
        with self._lock:
            seen, projected = self._last or (None, None)
            self._last = None
        if projected is None or seen != [list(ids) for ids in completion_ids]:
            raise RuntimeError("R3HFDenseReward did not score these completions (was it called by this trainer?)")
        return projected


def scoring_item(prompt: Any, completion_text: str) -> dict[str, Any]:
    """Text form for a string prompt, chat form (the RM's template) for a message list."""
    if isinstance(prompt, str):
        return {"prompt": prompt, "response": completion_text}
    history = [{"role": m["role"], "content": m["content"]} for m in prompt]
    return {"messages": [*history, {"role": "assistant", "content": completion_text}]}


def returns_to_go(rows: Sequence[Sequence[float]], width: int) -> Any:
    """(B, width) float32: entry (i, t) = sum of row i from t on (gamma = 1), 0 beyond the row."""
    import torch

    rewards = torch.zeros(len(rows), width, dtype=torch.float64)  # summed in float64, handed over as float32
    for i, row in enumerate(rows):
        if len(row) > width:
            raise ValueError(f"completion {i} has {len(row)} token rewards but the batch is {width} tokens wide")
        rewards[i, : len(row)] = torch.tensor(row, dtype=torch.float64)
    return rewards.flip(-1).cumsum(-1).flip(-1).to(torch.float32)


def group_advantages(
    returns: Any, lengths: Sequence[int], all_totals: Any, local_slice: slice, num_generations: int, scale: str
) -> Any:
    """(B, T) advantages: each row's returns-to-go minus its group's mean total, over the group's (or batch) std.

    ``all_totals``: every process's totals (G_i,0), groups of ``num_generations`` consecutive rows; ``returns``
    and ``lengths`` are this process's rows, ``all_totals[local_slice]``.
    """
    import torch

    grouped = all_totals.view(-1, num_generations)
    mean = grouped.mean(dim=1).repeat_interleave(num_generations)
    if scale == "group":
        std = grouped.std(dim=1).repeat_interleave(num_generations) if num_generations > 1 else torch.zeros_like(mean)
    elif scale == "batch":
        std = (all_totals.std() if all_totals.numel() > 1 else torch.zeros(())).expand_as(all_totals)
    elif scale == "none":
        std = None
    else:
        raise ValueError(f'scale_rewards must be "group", "batch" or "none", not {scale!r}')
    mean = mean[local_slice].to(returns.device)
    advantages = returns - mean.unsqueeze(1)
    if std is not None:
        advantages = advantages / (std[local_slice].to(returns.device).unsqueeze(1) + _STD_EPS)
    valid = torch.arange(returns.size(1), device=returns.device).unsqueeze(0) < torch.tensor(
        list(lengths), device=returns.device).unsqueeze(1)
    return advantages * valid


def dense_rows(
    projected: Sequence[PolicyTokenRewards], weight: float, others: Sequence[float]
) -> list[list[float]]:
    """Each completion's weighted per-token rewards, with the other reward functions' weighted sum on its last
    token (where TRL would have put a sequence reward)."""
    rows = []
    for item, extra in zip(projected, others, strict=True):
        row = [weight * r for r in item.token_rewards]
        if not all(math.isfinite(r) for r in row):
            raise ValueError(f"non-finite token reward from the reward server: {item.token_rewards}")
        if row and math.isfinite(extra):
            row[-1] += extra
        rows.append(row)
    return rows


def __getattr__(name: str) -> Any:
    if name == "R3HFDenseGRPOTrainer":
        from r3hf_client.adapters.trl_trainer import build_trainer_class

        return build_trainer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["R3HFDenseGRPOTrainer", "R3HFDenseReward", "dense_rows", "group_advantages", "returns_to_go", "scoring_item"]
