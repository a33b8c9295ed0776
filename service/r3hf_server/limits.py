"""Checks made before any compute: a request's item count, each item's size in characters, and text a tokenizer
can read at all.

Tokenizing is the first real cost of a request, and a tokenizer is linear in its input: a single multi-megabyte
string would hold a tokenizer thread for seconds only to be rejected as over-length afterwards. Counting characters
is free, and no realistic text packs more than a few dozen characters into one token, so a bound of that many
characters per token of the model's limit rejects only items that could never fit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .errors import InvalidInputError, TooLargeError
from .runner.base import ItemInput

CHARS_PER_TOKEN_BOUND = 32

# JSON's \ud800-style escapes can carry half a UTF-16 surrogate pair, which Python keeps in a str but which is not
# Unicode text: the Rust tokenizers raise on it (a 500 found by fuzzing). Refuse it as the client's error instead.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def default_max_item_chars(max_length: int) -> int:
    return CHARS_PER_TOKEN_BOUND * max_length


def check_request(inputs: Sequence[ItemInput], max_items: int, max_item_chars: int) -> None:
    if len(inputs) > max_items:
        raise TooLargeError(
            f"{len(inputs)} items in one request exceed the limit of {max_items} (--max-items-per-request); split it"
        )
    for index, item in enumerate(inputs):
        size = item.size()
        if size > max_item_chars:
            raise InvalidInputError(
                f"item {index}: {size} characters exceed the limit of {max_item_chars} per item "
                "(--max-item-chars); no item that long can fit the model's token limit"
            )
        if any(_LONE_SURROGATE.search(text) for text in item.texts()):
            raise InvalidInputError(
                f"item {index}: the text contains a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape), "
                "which is not valid Unicode; send valid UTF-8 text"
            )
