"""The wire protocol's option lists, each defined once.

Plain ``Literal`` types, no pydantic: ``wire.py`` builds its request models from them, and everything else derives
its choices from here — the server's redistribution and runner, the CLI's ``choices``, scripts/eval_credit.py — while
the playground reads them back from the OpenAPI schema (``/openapi.json``). ``choices(Option)`` lists one.
"""

from __future__ import annotations

from typing import Literal, get_args

# How a sequence score is spread over the response tokens (the server's redistribution module implements each).
Redistribution = Literal["r3hf", "sparse", "uniform", "attention"]
# What r3hf measures the first response token against: R(x, empty), or 0.
Baseline = Literal["prompt", "zero"]
# What happens to an item longer than the model's limit.
Truncation = Literal["error", "left"]
# How per-token rewards travel in a response.
EncodingFormat = Literal["float", "base64"]
# The forms an item may take: {prompt, response}, {prompt_ids, response_ids} or {messages} (wire.ITEM_FORMS).
ItemForm = Literal["text", "ids", "chat"]


def choices(option: object) -> tuple[str, ...]:
    """The values of one option list, in order: ``choices(Redistribution)`` -> ``("r3hf", "sparse", ...)``."""
    return get_args(option)
