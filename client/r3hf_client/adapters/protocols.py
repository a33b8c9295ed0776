"""Request and response shapes of trainers' remote-reward protocols, shared by the server's adapter routes and the
client-side adapters. Unlike the core API these models ignore unknown fields: a trainer release that adds a key
must not break training, and none of these bodies carries an option that could change results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from r3hf_client.wire import ScoreResult


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class OpenRLHFRequest(_Lenient):
    """What OpenRLHF's remote reward model client POSTs (``--remote_rm_url http://host:port/get_reward``)."""

    query: list[str] = Field(description="Prompt + response, decoded from the policy's ids (special tokens kept).")
    prompts: list[str] | None = Field(
        None, description="The templated prompts; the response is query[i][len(prompts[i]):]."
    )
    labels: list[Any] | None = Field(None, description="The dataset's label column (unused by a reward model).")


class OpenRLHFResponse(BaseModel):
    rewards: list[float] = Field(description="R(x, y) per query: what OpenRLHF turns into advantages.")
    scores: list[float] = Field(description="The same values, for OpenRLHF's dynamic filtering.")
    extra_logs: dict[str, list[float]] = Field(
        description="Per-query diagnostics OpenRLHF logs; the same keys in every response, empty lists included."
    )
    token_rewards: list[list[float]] | None = Field(
        None,
        description="Per-token R3HF rewards per query (only with ?token_rewards=true). A top-level key of its own: "
        "OpenRLHF ignores it, and never finds per-token lists inside rewards, scores or extra_logs.",
    )


class SlimeRequest(_Lenient):
    """What slime POSTs to ``--rm-url``."""

    prompt: str = Field(description="The prompt text as slime rendered it.")
    response: str = Field(description="The response text.")
    label: Any = Field(None, description="The sample's label (unused by a reward model).")


class SlimeResponse(BaseModel):
    score: float = Field(description="R(x, y); run slime with --reward-key score.")
    prompt_score: float = Field(description="R(x, empty), the score at the prompt's last token.")
    num_response_tokens: int = Field(description="Response tokens in the reward model's tokenizer.")
    truncated: bool = Field(description="The start of the prompt was dropped to fit the model.")


EXTRA_LOG_KEYS = ("r3hf_prompt_score", "r3hf_num_response_tokens", "r3hf_truncated", "r3hf_prompt_not_prefix")


def split_query(query: str, prompt: str | None) -> tuple[str, str, bool]:
    """``(prompt, response, prompt_matched)``: OpenRLHF's query is prompt + response.

    When the query does not start with its prompt (OpenRLHF may have left-truncated the prompt) the whole query is
    scored as the response after an empty prompt, and ``prompt_matched`` is False so the caller can count it.
    """
    if prompt is not None and query.startswith(prompt):
        return prompt, query[len(prompt) :], True
    return "", query, False


def check_prompts(query: Sequence[str], prompts: Sequence[str] | None) -> list[str | None]:
    if prompts is None:
        return [None] * len(query)
    if len(prompts) != len(query):
        raise ValueError(f"{len(query)} queries but {len(prompts)} prompts; OpenRLHF sends one prompt per query")
    return list(prompts)


def openrlhf_reply(
    results: Sequence[ScoreResult], prompt_matched: Sequence[bool], token_rewards: Sequence[Sequence[float]] | None
) -> OpenRLHFResponse:
    scores = [r.score for r in results]
    logs = {
        "r3hf_prompt_score": [r.prompt_score for r in results],
        "r3hf_num_response_tokens": [float(r.num_response_tokens) for r in results],
        "r3hf_truncated": [float(r.truncated) for r in results],
        "r3hf_prompt_not_prefix": [float(not matched) for matched in prompt_matched],
    }
    rows = None if token_rewards is None else [list(row) for row in token_rewards]
    return OpenRLHFResponse(rewards=scores, scores=list(scores), extra_logs=logs, token_rewards=rows)
