"""Per-token rewards projected from the reward model's tokens onto the policy's tokens.

Coordinates are UTF-8 byte offsets into the one response string both sides agree on. The RM's token spans come
from the server (``return_tokens``: character offsets, converted here to bytes); the policy's come from its sampled
ids (``token_bytes.policy_byte_spans``) or from the caller.

Rule (end-aligned, sum-conserving): read the RM's prefix-score curve at each policy token's end byte and take
differences. Equivalently, each RM token's reward goes to the policy token that emits the RM token's last byte, and
RM tokens that end at the response's end (where the server has already folded the template suffix and EOS in)
go to the last policy token — a trailing EOS of the policy included, where trainers put a sequence score. So
every RM reward lands on exactly one policy token and the projected rewards sum to the RM's
(``score − prompt_score``, or ``score`` with ``baseline="zero"``).

The client projects, not the server: only the client has the policy's sampled ids and tokenizer, the projection
is a cheap O(n) pass over numbers the server returns anyway, and one RM call can be projected onto any number of
policies. docs/client.md gives the full reasoning.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .token_bytes import ByteSpan, policy_byte_spans
from .wire import TokenRewardResult, TokenRewardsResponse


@dataclass(frozen=True)
class PolicyTokenRewards:
    """One item's rewards on the policy's tokens, with the diagnostics a trainer should log."""

    token_rewards: list[float]  # one per policy token
    score: float
    prompt_score: float
    aligned: bool  # False: alignment unavailable, the whole reward sits on the last policy token
    mapped_fraction: float  # share of the response's bytes covered by RM tokens that were projected
    truncated: bool
    template_changed_response: bool
    reward_sum: float  # sum of the RM's token rewards
    sum_error: float  # sum(token_rewards) - reward_sum: float rounding only
    reason: str | None = None  # why alignment is unavailable


def char_to_byte_spans(text: str, offsets: Sequence[Sequence[int]]) -> list[ByteSpan]:
    """Character ``[start, end)`` offsets into ``text`` as UTF-8 byte offsets.

    An RM token that splits a multi-byte character reports that whole character; its end is then the character's
    last byte, so its reward goes to the policy token that completes the character.
    """
    starts = [0]
    for char in text:
        starts.append(starts[-1] + len(char.encode("utf-8")))
    return [(starts[s], starts[e]) for s, e in offsets]


def owners_of(rm_ends: Sequence[int], policy_ends: Sequence[int], response_bytes: int) -> list[int]:
    """For each RM token, the index of the policy token that receives its reward.

    The last RM token always goes to the last policy token: the server folded the score change of everything
    after the response (EOS, template suffix) into it, and that is where a sequence score belongs, even when the
    RM's tokens stop short of the response's last byte.
    """
    last = len(policy_ends) - 1
    owners = [last if end >= response_bytes else min(bisect_left(policy_ends, end), last) for end in rm_ends]
    if owners:
        owners[-1] = last
    return owners


def project_rewards(
    rm_rewards: Sequence[float], rm_spans: Sequence[ByteSpan], policy_spans: Sequence[ByteSpan], response_bytes: int
) -> list[float]:
    """The end-aligned projection; ``math.fsum`` per policy token keeps each group's sum correctly rounded."""
    groups: list[list[float]] = [[] for _ in policy_spans]
    owners = owners_of([end for _, end in rm_spans], [end for _, end in policy_spans], response_bytes)
    for reward, owner in zip(rm_rewards, owners):
        groups[owner].append(reward)
    return [math.fsum(group) for group in groups]


def covered_fraction(spans: Sequence[ByteSpan], response_bytes: int) -> float:
    if response_bytes == 0:
        return 1.0
    covered, reach = 0, 0
    for start, end in sorted(spans):
        start, end = max(start, reach), min(end, response_bytes)
        if end > start:
            covered += end - start
            reach = end
    return covered / response_bytes


def project_result(
    result: TokenRewardResult, response: str, policy_spans: Sequence[ByteSpan] | None, num_policy_tokens: int
) -> PolicyTokenRewards:
    """Project one ``/token_rewards`` result (asked with ``return_tokens``, text form) onto the policy's tokens."""
    rewards = list(result.token_rewards)  # type: ignore[arg-type]
    reason = _unavailable_reason(result, policy_spans, num_policy_tokens)
    response_bytes = len(response.encode("utf-8"))
    if reason is None:
        rm_spans = char_to_byte_spans(response, result.offsets or [])
        projected = project_rewards(rewards, rm_spans, policy_spans or [], response_bytes)
        mapped = covered_fraction(rm_spans, response_bytes)
    else:
        # Sum-conserving fallback: the sequence's whole reward on the last policy token, as a sparse reward would.
        projected = [0.0] * num_policy_tokens
        if projected:
            projected[-1] = math.fsum(rewards)
        mapped = 0.0
    total = math.fsum(rewards)
    return PolicyTokenRewards(
        token_rewards=projected, score=result.score, prompt_score=result.prompt_score, aligned=reason is None,
        mapped_fraction=mapped, truncated=result.truncated,
        template_changed_response=result.template_changed_response, reward_sum=total,
        sum_error=math.fsum(projected) - total, reason=reason,
    )


def _unavailable_reason(
    result: TokenRewardResult, policy_spans: Sequence[ByteSpan] | None, num_policy_tokens: int
) -> str | None:
    if num_policy_tokens == 0:
        return "the policy response has no tokens"
    if policy_spans is None:
        return "the policy's token pieces do not spell the response text"
    if result.offsets is None:
        return "the RM result has no offsets (ids form, or return_tokens was off)"
    if result.template_changed_response:
        return "the RM's chat template changed the response text; send the text form"
    return None


@dataclass(frozen=True)
class PolicyJob:
    """Text-form items plus what is needed to project their results; shared by the sync and async clients."""

    items: list[dict[str, str]]
    responses: list[str]
    spans: list[list[ByteSpan] | None]
    counts: list[int]

    @classmethod
    def build(
        cls, prompts: Sequence[str], responses: Sequence[str], policy_ids: Sequence[Sequence[int]] | None,
        policy_tokenizer: Any, policy_spans: Sequence[Sequence[ByteSpan]] | None,
    ) -> PolicyJob:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if policy_spans is not None:
            spans = [_checked_spans(list(map(tuple, s)), r) for s, r in zip(policy_spans, responses, strict=True)]
            counts = [len(s) for s in spans]
        elif policy_ids is not None and policy_tokenizer is not None:
            spans = [policy_byte_spans(r, ids, policy_tokenizer) for r, ids in zip(responses, policy_ids, strict=True)]
            counts = [len(ids) for ids in policy_ids]
        else:
            raise ValueError("give policy_spans, or policy_ids together with policy_tokenizer")
        items = [{"prompt": p, "response": r} for p, r in zip(prompts, responses)]
        return cls(items, list(responses), spans, counts)

    def project(self, response: TokenRewardsResponse) -> list[PolicyTokenRewards]:
        return [
            project_result(result, text, spans, count)
            for result, text, spans, count in zip(response.results, self.responses, self.spans, self.counts)
        ]


def _checked_spans(spans: list[ByteSpan], response: str) -> list[ByteSpan]:
    size = len(response.encode("utf-8"))
    ends = [end for _, end in spans]
    if any(not 0 <= s <= e <= size for s, e in spans) or ends != sorted(ends):
        raise ValueError(f"policy spans must be [start, end) byte offsets within 0..{size}, in order: {spans}")
    return spans
