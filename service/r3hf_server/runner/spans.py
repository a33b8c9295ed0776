"""Where the response lies among the tokens, and left truncation that never cuts it. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidInputError
from .base import EncodedItem

Offsets = Sequence[tuple[int, int]]


def response_token_range(offsets: Offsets, start: int, end: int, leading_specials: int) -> tuple[int, int]:
    """Token range ``[p, q)`` of the response occupying characters ``[start, end)`` of the encoded text.

    A token belongs to the response when its span is non-empty and overlaps the response's characters, so a token
    straddling the prompt/response boundary (or the response/suffix boundary) belongs to the response. Zero-width
    tokens (an added BOS or EOS) never do. For an empty response ``p == q`` sits right after the last token that
    ends at or before ``start`` (or after the ``leading_specials`` the tokenizer prepended), so the prompt score is
    read there and a trailing EOS is not counted as prompt.
    """
    inside = [i for i, (s, e) in enumerate(offsets) if e > s and e > start and s < end]
    if inside:
        return inside[0], inside[-1] + 1
    before = [i for i, (s, e) in enumerate(offsets) if e > s and e <= start]
    p = before[-1] + 1 if before else leading_specials
    return p, p


def offsets_in_response(offsets: Offsets, start: int, end: int) -> tuple[tuple[int, int], ...]:
    """Token spans shifted to be indices into the response string, clamped to ``[0, end - start]``."""
    length = end - start
    return tuple((min(max(s - start, 0), length), min(max(e - start, 0), length)) for s, e in offsets)


def fit_to_length(item: EncodedItem, max_length: int, truncation: str, keep_leading: int) -> EncodedItem:
    """Return ``item`` if it fits; else reject it or drop the start of its prompt (keeping ``keep_leading`` tokens)."""
    n = len(item)
    if n <= max_length:
        return item
    cut = n - max_length
    droppable = item.response_start - keep_leading
    if cut > droppable:
        kept = n - max(droppable, 0)
        raise InvalidInputError(
            f"the response alone needs {kept} tokens (response, special tokens and template suffix) but the "
            f"model's limit is {max_length}; no truncation can fit it"
        )
    if truncation != "left":
        raise InvalidInputError(
            f"{n} tokens exceed the model's limit of {max_length}; shorten the prompt or send "
            '"truncation": "left" to drop the start of the prompt'
        )
    ids = item.input_ids[:keep_leading] + item.input_ids[keep_leading + cut :]
    return EncodedItem(
        input_ids=ids,
        response_start=item.response_start - cut,
        response_end=item.response_end - cut,
        truncated=True,
        template_changed_response=item.template_changed_response,
        tokens=item.tokens,
        offsets=item.offsets,
    )
