"""The runner interface: items in, one ``ForwardResult`` per item out. No HTTP, no pydantic wire models here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Union

from r3hf_client.options import Truncation

if TYPE_CHECKING:
    from .planning import BatchPolicy


# The server's side of each item form (r3hf_client.options.ItemForm); api/convert.py maps wire items onto them.
# ``size``: characters (ids count one each) the tokenizer or the length check would read; ``texts``: the strings.
@dataclass(frozen=True)
class TextInput:
    prompt: str
    response: str

    def size(self) -> int:
        return len(self.prompt) + len(self.response)

    def texts(self) -> list[str]:
        return [self.prompt, self.response]


@dataclass(frozen=True)
class IdsInput:
    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]

    def size(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)

    def texts(self) -> list[str]:
        return []


@dataclass(frozen=True)
class ChatInput:
    messages: tuple[tuple[str, str], ...]  # (role, content)

    def size(self) -> int:
        # +1 per message: the chat template adds at least a separator, and an empty message must still count
        return sum(len(role) + len(content) + 1 for role, content in self.messages)

    def texts(self) -> list[str]:
        return [text for message in self.messages for text in message]


ItemInput = Union[TextInput, IdsInput, ChatInput]
TruncationMode = Truncation  # r3hf_client.options: the one list


@dataclass(frozen=True)
class EncodedItem:
    """One item as the model reads it.

    ``input_ids[:response_start]`` is the prompt, ``input_ids[response_start:response_end]`` the response and the
    rest a suffix (EOS, template end) whose score change is credited to the last response token.
    ``needs_attention`` asks the runner for the final position's attention as well (the ``attention`` strategy);
    the runner's ``ForwardResult`` for such an item carries ``final_attention``.
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


@dataclass(frozen=True)
class ForwardResult:
    """What one forward pass gives for one item.

    ``prefix_scores[t]`` = R(the item's tokens up to and including t). ``final_attention``, only for an item with
    ``needs_attention``: the last layer's attention from the final position to every position, averaged over heads
    (one weight per position, summing to 1), from that same pass.
    """

    prefix_scores: list[float]
    final_attention: list[float] | None = None

    def __post_init__(self) -> None:
        if self.final_attention is not None and len(self.final_attention) != len(self.prefix_scores):
            raise ValueError(
                f"{len(self.final_attention)} attention weights for {len(self.prefix_scores)} positions"
            )


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
    attention_implementation: str = ""  # what the model's config says transformers runs (sdpa, eager, flash_...)
    batch_paths: tuple[str, ...] = ()  # forwards in use: padded | equal_lengths | packed | shared_prompt
    prefix_scores: str = "one_pass"  # one_pass (causal head per position) | expanded (every prefix its own pass)


class Runner(Protocol):
    """What the engine and batcher need from a model backend.

    ``encode`` is CPU work (tokenizer) and may run on any thread. ``forward`` is device work and runs on the
    batcher's single worker thread: for a batch of items it returns one ``ForwardResult`` per item, in order, with
    the score of every prefix (ModelInfo.prefix_scores says how: one pass, or expanded). ``batch_policy`` says how ``forward`` runs a batch
    (padding, packing, shared prompts), so the batcher can cut batches by what they will cost
    (``planning.batch_cost``); it is fixed when the runner is built.
    """

    @property
    def info(self) -> ModelInfo: ...

    @property
    def batch_policy(self) -> BatchPolicy: ...

    def encode(self, item: ItemInput, truncation: TruncationMode, with_tokens: bool) -> EncodedItem: ...

    def forward(self, batch: Sequence[EncodedItem]) -> list[ForwardResult]: ...
