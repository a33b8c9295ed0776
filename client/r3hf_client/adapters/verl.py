"""verl: a ``compute_score`` custom reward function (one sequence score per sample).

verl ≥ 0.8 (tested with 0.9.1): ``reward.custom_reward_function.path`` = this file (loaded standalone through
``spec_from_file_location``, so this module imports only absolute names) or ``pkg://r3hf_client.adapters.verl``,
and ``reward.custom_reward_function.name=compute_score``. The old top-level ``custom_reward_function.*`` keys
(verl ≤ 0.7) are ignored by 0.9's ``main_ppo``. verl passes only the response as ``solution_str``; the prompt must
come through ``extra_info["prompt"]`` (a string, or a message list scored with the RM's chat template), which the
data preprocessing puts there. The server comes from ``R3HF_CLIENT_URL``.

``compute_score_batch`` scores many samples in one call; it is a helper, not a verl route (verl 0.9 has no batch
reward manager). Dense per-token rewards: ``R3HFRewardManager`` in ``verl_dense``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from r3hf_client.adapters.settings import ClientSettings, shared_client
from r3hf_client.adapters.trl import sample_item


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
