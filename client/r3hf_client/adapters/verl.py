"""verl: a ``compute_score`` custom reward function (sequence score) and a reward manager for dense rewards.

Sequence score (``custom_reward_function.path`` = this file, ``.name`` = ``compute_score``, or
``compute_score_batch`` with the batch reward manager). verl passes only the response as ``solution_str``; the prompt
must come through ``extra_info["prompt"]`` (a string, or a message list scored with the RM's chat template), which
the data preprocessing puts there. The server comes from ``R3HF_CLIENT_URL``.

Dense per-token rewards: ``R3HFRewardManager`` in ``verl_dense``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .settings import ClientSettings, shared_client
from .trl import sample_item


def compute_score(
    data_source: Any, solution_str: str, ground_truth: Any, extra_info: dict | None = None, **kwargs: Any
) -> float:
    return compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info])[0]


def compute_score_batch(
    data_sources: Sequence[Any], solution_strs: Sequence[str], ground_truths: Sequence[Any],
    extra_infos: Sequence[dict | None], **kwargs: Any,
) -> list[float]:
    items = [sample_item(prompt_of(info), response) for info, response in zip(extra_infos, solution_strs, strict=True)]
    out = shared_client(ClientSettings.from_env()).score(items, truncation="left")
    return [r.score for r in out.results]


def prompt_of(extra_info: dict | None) -> Any:
    prompt = (extra_info or {}).get("prompt")
    if prompt is None:
        raise ValueError(
            'verl passes only the response to compute_score: put the prompt in extra_info["prompt"] when '
            "preprocessing the data (a string, or the chat messages)"
        )
    return prompt
