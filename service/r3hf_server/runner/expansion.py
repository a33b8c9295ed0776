"""The runner for encoder reward models: every response prefix scored as its own sequence (``prefixes``), through
the model's own forward, in right-padded forwards cut to ``--max-batch-tokens``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InvalidInputError
from .base import EncodedItem, ForwardResult, ItemInput, ModelInfo, TruncationMode
from .encoding import TokenizerEncoder
from .prefixes import Ids, expanded_sequences, prefix_curve

if TYPE_CHECKING:
    from .loading import LoadedModel
    from .planning import BatchPolicy


def trailing_special_ids(tokenizer: Any) -> Ids:
    """The ids the tokenizer appends after a single sequence (``[SEP]`` for BERT, ``</s>`` for RoBERTa)."""
    with_specials = list(tokenizer("x", add_special_tokens=True)["input_ids"])
    plain = list(tokenizer("x", add_special_tokens=False)["input_ids"])
    for start in range(len(with_specials) - len(plain) + 1):
        if with_specials[start : start + len(plain)] == plain:
            return tuple(with_specials[start + len(plain) :])
    return ()


def score_sequences(model: Any, sequences: Sequence[Ids], *, pad_id: int, label_index: int, device: torch.device,
                    normalization: tuple[float, float] | None, max_batch_tokens: int) -> list[float]:
    """The model's own score of every sequence: identical sequences once, longest first, right-padded forwards of
    at most ``max_batch_tokens`` positions (rows x longest); a sequence longer than that runs alone."""
    unique = sorted(set(sequences), key=len, reverse=True)
    scores: dict[Ids, float] = {}
    start = 0
    while start < len(unique):
        longest = len(unique[start])
        rows = max(1, min(len(unique) - start, max_batch_tokens // max(longest, 1)))
        chunk = unique[start : start + rows]
        for ids, score in zip(chunk, _forward(model, chunk, pad_id, label_index, device)):
            scores[ids] = score
        start += rows
    if normalization is not None:
        mean, std = normalization
        scores = {ids: (s - mean) / std for ids, s in scores.items()}
    return [scores[ids] for ids in sequences]


def _forward(model: Any, chunk: Sequence[Ids], pad_id: int, label_index: int, device: torch.device) -> list[float]:
    width = len(chunk[0])
    input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(chunk):
        input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        mask[row, : len(ids)] = 1
    with torch.inference_mode():
        logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
    return logits.reshape(len(chunk), -1)[:, label_index].float().cpu().tolist()


class ExpandedRunner:
    """A ``Runner`` for encoder reward models: ``forward`` scores every prefix of every item as its own sequence."""

    def __init__(self, loaded: LoadedModel, info: ModelInfo, policy: BatchPolicy, max_batch_tokens: int) -> None:
        self.loaded = loaded
        self._info = info
        self._batch_policy = policy
        self.max_batch_tokens = max_batch_tokens
        self.suffix = trailing_special_ids(loaded.tokenizer)
        self.encoder = TokenizerEncoder(loaded.tokenizer, loaded.max_length, loaded.vocab_size)

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def batch_policy(self) -> BatchPolicy:
        return self._batch_policy

    def encode(self, item: ItemInput, truncation: TruncationMode, with_tokens: bool) -> EncodedItem:
        encoded = self.encoder.encode(item, truncation, with_tokens)
        if encoded.response_end < len(encoded) or not self.suffix:
            return encoded
        # An ids item arrives without the tokenizer's closing specials: the whole item is scored with them, as
        # every prefix is, and as the model was trained.
        return self.encoder.fit(replace(encoded, input_ids=encoded.input_ids + self.suffix), truncation)

    def _suffix_for(self, item: EncodedItem) -> Ids:
        """The closing specials, unless a prefix with them would pass the model's limit (only for an item built
        without them at full length, e.g. the warm-up's)."""
        fits = item.response_end + len(self.suffix) <= self.loaded.max_length
        return self.suffix if fits else ()

    def forward(self, batch: Sequence[EncodedItem]) -> list[ForwardResult]:
        if any(item.needs_attention for item in batch):
            raise InvalidInputError(
                "the attention strategy reads one forward's attention from the final position; this encoder reward "
                "model is scored by prefix expansion (many passes): use the r3hf, uniform or sparse strategy"
            )
        stride = self.batch_policy.prefix_stride
        expansions = [expanded_sequences(item, stride, self._suffix_for(item)) for item in batch]
        flat = [sequence for sequences in expansions for sequence in sequences]
        loaded = self.loaded
        scores = score_sequences(
            loaded.model, flat, pad_id=loaded.pad_id, label_index=loaded.label_index, device=loaded.device,
            normalization=loaded.normalization, max_batch_tokens=self.max_batch_tokens,
        )
        results, start = [], 0
        for item, sequences in zip(batch, expansions):
            results.append(ForwardResult(prefix_curve(item, stride, scores[start : start + len(sequences)])))
            start += len(sequences)
        return results
