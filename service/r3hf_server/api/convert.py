"""Wire models to the engine's dataclasses and back."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from r3hf_client import wire
from r3hf_client.codec import encode_float32_base64

from ..engine import ChatInput, IdsInput, ItemInput, ItemOutcome, TextInput


# One converter per wire item form (wire.ITEM_FORMS); tests/unit/test_option_lists.py checks that none is missing.
TO_INPUT: dict[type, Callable[[Any], ItemInput]] = {
    wire.TextItem: lambda item: TextInput(item.prompt, item.response),
    wire.IdsItem: lambda item: IdsInput(tuple(item.prompt_ids), tuple(item.response_ids)),
    wire.ChatItem: lambda item: ChatInput(tuple((m.role, m.content) for m in item.messages)),
}


def to_input(item: wire.TextItem | wire.IdsItem | wire.ChatItem) -> ItemInput:
    return TO_INPUT[type(item)](item)


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
