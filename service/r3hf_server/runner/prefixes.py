"""Prefix expansion for encoder reward models (BERT, RoBERTa, DeBERTa-v2/v3, ModernBERT, ...): which sequences an
item expands into, what they cost, and the prefix-score curve they give. Pure functions, shared by the runner
(``expansion``) and the cost model (``planning``).

An encoder attends both ways and pools one position, so one pass gives only the score of the whole sequence. Here
every response prefix is scored as its own sequence through the model's own forward (its pooling, its head):
prefix t is the item's tokens up to and including response token t followed by the special tokens the tokenizer
appends after a sequence (``[SEP]``, ``</s>``); ``R(x, ∅)`` is the prompt followed by the same suffix; the whole
item (with any template suffix) gives ``R(x, y)``.

With ``--prefix-stride K`` only every K-th response prefix (and the last) is scored; the prefix-score curve is
linear in between, so each stride's score change is spread evenly over its K tokens. Positions inside the prompt
before its last token are not scored: the curve is flat there (the prompt score), which no reward reads.
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import EncodedItem

Ids = tuple[int, ...]


def scored_positions(item: EncodedItem, stride: int) -> list[int]:
    """Positions t whose prefix score is computed: the prompt's last token, every ``stride``-th response token
    and the last response token."""
    p, q = item.response_start, item.response_end
    positions = [p - 1] if p > 0 else []
    positions += range(p - 1 + stride, q - 1, stride)
    if q > p:
        positions.append(q - 1)
    return positions


def expanded_sequences(item: EncodedItem, stride: int, suffix: Ids) -> list[Ids]:
    """The sequences one item expands into: one per scored position, then the whole item."""
    ids = item.input_ids
    prefixes = [ids[: t + 1] + suffix for t in scored_positions(item, stride)]
    return prefixes + [ids]


def expanded_tokens(item: EncodedItem, stride: int, suffix_length: int) -> int:
    """Token positions the item's expansion holds (its cost for the batcher), without building it."""
    prefixes = sum(t + 1 + suffix_length for t in scored_positions(item, stride))
    return prefixes + len(item)


def prefix_curve(item: EncodedItem, stride: int, scores: Sequence[float]) -> list[float]:
    """A score per position from the expansion's scores (``expanded_sequences`` order): measured at the scored
    positions, linear between them, the prompt score before them and the whole item's score after the response."""
    positions = scored_positions(item, stride)
    anchors = list(zip(positions, scores))
    whole = float(scores[len(positions)])
    p, q = item.response_start, item.response_end
    if p == 0 and q > 0:
        anchors.insert(0, (-1, 0.0))  # no prompt token: the prompt score is 0, as the redistribution reads it
    curve = [whole] * len(item)
    for t in range(max(anchors[0][0], 0) if anchors else 0):
        curve[t] = anchors[0][1]
    for (a, left), (b, right) in zip(anchors, anchors[1:]):
        for t in range(max(a, 0), b + 1):
            curve[t] = left + (right - left) * (t - a) / (b - a)
    if len(anchors) == 1 and anchors[0][0] >= 0:
        curve[anchors[0][0]] = anchors[0][1]
    return curve
