"""Four ways to get per-position scores from one forward pass, all equal to each other within float rounding.

- padded: right-padded rows. Right padding keeps every real token at its natural position and causal attention
  keeps padding out of every real position, so an item's scores do not depend on its batch mates.
- packed: every sequence in one row, positions restarting at 0 for each; transformers turns the position resets
  into a block-diagonal causal mask (flash-attention varlen on CUDA: no padding at all).
- equal lengths: only rows of the same length run together, with no attention mask at all. On CPU a padding mask
  sends SDPA to its slow masked path (measured 4.5x slower for 4x400 tokens), while a batch of one or of equal
  lengths keeps the fast causal kernel.
- shared prompt: items with identical prompt tokens (GRPO groups) run the prompt once and their responses against
  its KV cache.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

Ids = Sequence[int]


@dataclass
class ScoreHead:
    """The model's pieces a forward needs: the backbone, the head, which output and its normalisation."""

    backbone: Any
    head: Any
    label_index: int
    normalization: tuple[float, float] | None
    device: torch.device
    pad_id: int

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        values = self.head(hidden)
        if values.dim() < hidden.dim():  # a head that returns one value per position without a label axis
            values = values.unsqueeze(-1)
        scores = values[..., self.label_index].float()
        if self.normalization is not None:
            mean, std = self.normalization
            scores = (scores - mean) / std
        return scores

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)


def right_padded(sequences: Sequence[Ids], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        mask[row, : len(ids)] = 1
    return input_ids, mask


def padded_forward(model: ScoreHead, sequences: Sequence[Ids]) -> list[list[float]]:
    input_ids, mask = right_padded(sequences, model.pad_id)
    with torch.inference_mode():
        hidden = model.backbone(
            input_ids=model.to_device(input_ids), attention_mask=model.to_device(mask), use_cache=False
        ).last_hidden_state
        scores = model.scores(hidden).cpu()
    return [scores[row, : len(ids)].tolist() for row, ids in enumerate(sequences)]


def equal_length_forward(model: ScoreHead, sequences: Sequence[Ids]) -> list[list[float]]:
    results: list[list[float]] = [[] for _ in sequences]
    for indices in _by_length(sequences).values():
        input_ids = torch.tensor([list(sequences[i]) for i in indices], dtype=torch.long)
        with torch.inference_mode():
            hidden = model.backbone(input_ids=model.to_device(input_ids), use_cache=False).last_hidden_state
            scores = model.scores(hidden).cpu().tolist()
        for row, index in enumerate(indices):
            results[index] = scores[row]
    return results


def _by_length(sequences: Sequence[Ids]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for index, ids in enumerate(sequences):
        groups.setdefault(len(ids), []).append(index)
    return groups


def packed_forward(model: ScoreHead, sequences: Sequence[Ids]) -> list[list[float]]:
    flat = torch.tensor([t for ids in sequences for t in ids], dtype=torch.long)[None]
    positions = torch.cat([torch.arange(len(ids)) for ids in sequences])[None]
    with torch.inference_mode():
        # No attention mask and no cache: that is what tells transformers the row holds packed sequences.
        hidden = model.backbone(
            input_ids=model.to_device(flat), position_ids=model.to_device(positions), use_cache=False
        ).last_hidden_state
        scores = model.scores(hidden)[0].cpu().tolist()
    out, start = [], 0
    for ids in sequences:
        out.append(scores[start : start + len(ids)])
        start += len(ids)
    return out


def shared_prompt_forward(
    model: ScoreHead, prompt: Ids, responses: Sequence[Ids], equal_lengths_only: bool = False
) -> list[list[float]]:
    """Prefix scores of ``prompt + response`` for each response, computing the prompt once.

    With ``equal_lengths_only`` the responses run in groups of equal length against copies of the prompt's cache,
    so no padding mask is ever built (see the module docstring).
    """
    prompt_ids = torch.tensor([list(prompt)], dtype=torch.long)
    with torch.inference_mode():
        out = model.backbone(input_ids=model.to_device(prompt_ids), use_cache=True)
        prompt_scores = model.scores(out.last_hidden_state)[0].cpu().tolist()
    cache = out.cache  # transformers 5 names the KV cache `cache` (formerly past_key_values)
    subsets = list(_by_length(responses).values()) if equal_lengths_only else [list(range(len(responses)))]
    results: list[list[float]] = [[] for _ in responses]
    for i, indices in enumerate(subsets):
        subset_cache = cache if i == len(subsets) - 1 else copy.deepcopy(cache)  # each forward extends its cache
        scored = _responses_against(model, len(prompt), [responses[j] for j in indices], subset_cache)
        for index, scores in zip(indices, scored):
            results[index] = prompt_scores + scores
    return results


def _responses_against(model: ScoreHead, prompt_length: int, responses: Sequence[Ids], cache: Any) -> list[list[float]]:
    response_ids, response_mask = right_padded(responses, model.pad_id)
    n, width = response_ids.shape
    cache.batch_repeat_interleave(n)
    mask = torch.cat([torch.ones(n, prompt_length, dtype=torch.long), response_mask], dim=1)
    positions = (prompt_length + torch.arange(width)).expand(n, width)
    with torch.inference_mode():
        hidden = model.backbone(
            input_ids=model.to_device(response_ids), attention_mask=model.to_device(mask),
            position_ids=model.to_device(positions), cache=cache, use_cache=True,
        ).last_hidden_state
        scores = model.scores(hidden).cpu()
    return [scores[row, : len(r)].tolist() for row, r in enumerate(responses)]
