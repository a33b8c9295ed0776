"""Wire models to the engine's dataclasses and back."""

from __future__ import annotations

from collections.abc import Sequence

from r3hf_client import wire
from r3hf_client.codec import encode_float32_base64

from ..engine import ChatInput, IdsInput, ItemInput, ItemOutcome, TextInput


def to_input(item: wire.TextItem | wire.IdsItem | wire.ChatItem) -> ItemInput:
    if isinstance(item, wire.TextItem):
        return TextInput(item.prompt, item.response)
    if isinstance(item, wire.IdsItem):
        return IdsInput(tuple(item.prompt_ids), tuple(item.response_ids))
    return ChatInput(tuple((m.role, m.content) for m in item.messages))


def usage(outcomes: Sequence[ItemOutcome]) -> wire.Usage:
    prompt = sum(o.encoded.response_start for o in outcomes)
    response = sum(o.encoded.response_end - o.encoded.response_start for o in outcomes)
    total = sum(len(o.encoded) for o in outcomes)
    return wire.Usage(num_items=len(outcomes), prompt_tokens=prompt, response_tokens=response, total_tokens=total)


def score_result(index: int, outcome: ItemOutcome) -> wire.ScoreResult:
    return wire.ScoreResult(**_common(index, outcome))


def token_reward_result(
    index: int, outcome: ItemOutcome, with_tokens: bool, encoding_format: wire.EncodingFormat = "float"
) -> wire.TokenRewardResult:
    encoded, rewards = outcome.encoded, outcome.scores.token_rewards
    return wire.TokenRewardResult(
        **_common(index, outcome),
        token_rewards=encode_float32_base64(rewards) if encoding_format == "base64" else rewards,
        tokens=list(encoded.tokens) if with_tokens and encoded.tokens is not None else None,
        offsets=list(encoded.offsets) if with_tokens and encoded.offsets is not None else None,
    )


def _common(index: int, outcome: ItemOutcome) -> dict:
    encoded = outcome.encoded
    return {
        "index": index,
        "score": outcome.scores.score,
        "prompt_score": outcome.scores.prompt_score,
        "num_response_tokens": encoded.response_end - encoded.response_start,
        "truncated": encoded.truncated,
        "template_changed_response": encoded.template_changed_response,
    }
