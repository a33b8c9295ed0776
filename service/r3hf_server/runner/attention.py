"""The last layer's attention from the final position, for the ``attention`` (ABC) credit strategy.

SDPA and flash attention never materialise attention weights, and switching the model to eager attention would slow
every request. Instead, for the one forward that asks for them, the last attention module's config is swapped for a
copy whose ``_attn_implementation`` names a wrapper registered with transformers' attention interface. The wrapper
runs the layer's own kernel for the output (so the scores are exactly those of the default path) and, beside it,
computes ``softmax(q_final . K^T * scaling)`` for the final query only: one row per head, O(sequence) extra work.
Other layers and other forwards are untouched.
"""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .base import ForwardResult
from .forward import ScoreHead

_WRAPPER_NAME = "r3hf_final_row"
_active = threading.local()


@dataclass
class _Capture:
    delegate: Any  # the attention function the layer would have used
    rows: list[torch.Tensor] = field(default_factory=list)  # (batch, positions) head-averaged final rows


def final_query_weights(
    query: torch.Tensor, key: torch.Tensor, attention_mask: torch.Tensor | None, scaling: float | None,
    softcap: float | None = None, sliding_window: int | None = None,
) -> torch.Tensor:
    """Head-averaged attention of the last query over every key: (batch, heads, q, d) x (batch, kv_heads, k, d)
    -> (batch, k), computed in float32 with the same scaling, soft-capping, window and mask as the kernel."""
    q = query[:, :, -1:, :].float()
    k = key.float()
    if k.shape[1] != q.shape[1]:  # grouped-query attention: each key head serves several query heads
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    logits = q @ k.transpose(-1, -2) * (scaling if scaling is not None else q.shape[-1] ** -0.5)
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    if attention_mask is not None and attention_mask.dim() == 4:
        row = attention_mask[:, :, -1:, : k.shape[2]]
        logits = logits.masked_fill(~row, float("-inf")) if row.dtype == torch.bool else logits + row.float()
    if sliding_window is not None and k.shape[2] > sliding_window:
        logits[..., : k.shape[2] - sliding_window] = float("-inf")
    return torch.softmax(logits, dim=-1).mean(dim=1)[:, 0, :]


def _attention_with_final_row(module, query, key, value, attention_mask, **kwargs):  # type: ignore[no-untyped-def]
    capture: _Capture = _active.capture
    output = capture.delegate(module, query, key, value, attention_mask, **kwargs)
    capture.rows.append(
        final_query_weights(
            query, key, attention_mask, kwargs.get("scaling"), kwargs.get("softcap"), kwargs.get("sliding_window")
        )
    )
    return output


ALL_ATTENTION_FUNCTIONS.register(_WRAPPER_NAME, _attention_with_final_row)


def last_attention_module(backbone: torch.nn.Module) -> torch.nn.Module | None:
    """The self-attention module of the last decoder layer: the attention module with the highest ``layer_idx``.

    None for an architecture whose attention does not go through transformers' attention interface (BLOOM's ALiBi
    attention keeps no config to swap): such classes run eager attention, whose weights ``output_attentions``
    returns directly (``attended_forward`` then reads them there).
    """
    candidates = [
        m for m in backbone.modules()
        if isinstance(getattr(m, "layer_idx", None), int) and hasattr(m, "config") and "Attention" in type(m).__name__
    ]
    return max(candidates, key=lambda m: m.layer_idx) if candidates else None


@contextmanager
def capturing_final_attention(module: torch.nn.Module) -> Iterator[_Capture]:
    """Within the block, ``module`` also records the final query's head-averaged attention on each forward."""
    original = module.config
    implementation = original._attn_implementation or "eager"
    own_eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    delegate = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, own_eager)
    if delegate is None:
        raise ValueError(f"no attention function for {implementation!r} in {type(module).__module__}")
    swapped = copy.copy(original)
    swapped._attn_implementation_internal = _WRAPPER_NAME  # the attribute, not the setter: sub-configs stay as is
    capture = _Capture(delegate)
    _active.capture = capture
    module.config = swapped
    try:
        yield capture
    finally:
        module.config = original
        _active.capture = None


def attended_forward(
    model: ScoreHead, attention_module: torch.nn.Module | None, ids: Sequence[int]
) -> ForwardResult:
    """Prefix scores and the final position's attention of one sequence, from one forward (no padding, no mask)."""
    input_ids = torch.tensor([list(ids)], dtype=torch.long)
    if attention_module is None:
        return _attended_by_output_attentions(model, input_ids)
    with torch.inference_mode(), capturing_final_attention(attention_module) as capture:
        hidden = model.backbone(input_ids=model.to_device(input_ids), use_cache=False).last_hidden_state
        scores = model.scores(hidden)[0].cpu().tolist()
    if len(capture.rows) != 1:
        raise RuntimeError(f"expected one attention row from the last layer, got {len(capture.rows)}")
    return ForwardResult(scores, capture.rows[0][0].cpu().tolist())


def _attended_by_output_attentions(model: ScoreHead, input_ids: torch.Tensor) -> ForwardResult:
    with torch.inference_mode():
        out = model.backbone(input_ids=model.to_device(input_ids), use_cache=False, output_attentions=True)
        scores = model.scores(out.last_hidden_state)[0].cpu().tolist()
    attentions = getattr(out, "attentions", None)
    if not attentions or attentions[-1] is None:
        raise RuntimeError(f"{type(model.backbone).__name__} returned no attention weights for the attention strategy")
    final_row = attentions[-1][0, :, -1, :].float().mean(dim=0)  # (heads, q, k) -> the final query, head-averaged
    return ForwardResult(scores, final_row.cpu().tolist())
