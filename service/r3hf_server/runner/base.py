"""The runner interface: items in, per-position prefix scores out. No HTTP, no pydantic wire models here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, Union


@dataclass(frozen=True)
class TextInput:
    prompt: str
    response: str


@dataclass(frozen=True)
class IdsInput:
    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]


@dataclass(frozen=True)
class ChatInput:
    messages: tuple[tuple[str, str], ...]  # (role, content)


ItemInput = Union[TextInput, IdsInput, ChatInput]
TruncationMode = Literal["error", "left"]


@dataclass(frozen=True)
class EncodedItem:
    """One item as the model reads it.

    ``input_ids[:response_start]`` is the prompt, ``input_ids[response_start:response_end]`` the response and the
    rest a suffix (EOS, template end) whose score change is credited to the last response token.
    ``needs_attention`` asks the runner for the final position's attention as well (the ``attention`` strategy);
    the runner answers such an item with ``AttendedPrefixScores``.
    """

    input_ids: tuple[int, ...]
    response_start: int
    response_end: int
    truncated: bool = False
    template_changed_response: bool = False
    tokens: tuple[str, ...] | None = None
    offsets: tuple[tuple[int, int], ...] | None = None
    needs_attention: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)


class AttendedPrefixScores(list):
    """Prefix scores (the list itself) plus ``final_attention``: the last layer's attention from the final position
    to every position, averaged over heads (one weight per position, summing to 1).

    A list subclass so it travels through the batcher exactly like plain prefix scores.
    """

    def __init__(self, prefix_scores: Sequence[float], final_attention: Sequence[float]) -> None:
        super().__init__(prefix_scores)
        if len(final_attention) != len(self):
            raise ValueError(f"{len(final_attention)} attention weights for {len(self)} positions")
        self.final_attention = list(final_attention)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    model_path: str
    fingerprint: str
    architecture: str
    dtype: str
    device: str
    max_length: int
    num_labels: int = 1
    label_index: int = 0
    score_normalization: tuple[float, float] | None = None
    has_chat_template: bool = False


class Runner(Protocol):
    """What the engine and batcher need from a model backend.

    ``encode`` is CPU work (tokenizer) and may run on any thread; ``prefix_scores`` is device work and runs on the
    batcher's single worker thread. ``prefix_scores`` returns, for every item, the score head read at every position
    of one forward pass: ``result[i][t] = R(tokens of item i up to and including t)``; for an item with
    ``needs_attention`` it is an ``AttendedPrefixScores`` from that same pass.
    """

    info: ModelInfo

    def encode(self, item: ItemInput, truncation: TruncationMode, with_tokens: bool) -> EncodedItem: ...

    def prefix_scores(self, batch: Sequence[EncodedItem]) -> list[list[float]]: ...
