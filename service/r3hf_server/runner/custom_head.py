"""Reward models with their own code (``--trust-remote-code``): the score is a head module applied per position to a
backbone's last hidden states (InternLM2's ``v_head``, an MLP score head as in Qwen2.5-Math-RM). ``--backbone-module``
and ``--head-module`` name the two by dotted attribute path; the start-up probe then checks that the head at the last
position reproduces the model's own forward score, so a head that is not per-position is refused, not mis-served.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from transformers import AutoModel, AutoModelForSequenceClassification

from ..errors import ModelRefusedError

# Auto classes a custom RM registers itself under in its config's auto_map, in order of preference.
AUTO_CLASSES = {"AutoModelForSequenceClassification": AutoModelForSequenceClassification, "AutoModel": AutoModel}
# Where a custom forward's output keeps its score, when it is not a bare tensor.
_SCORE_FIELDS = ("logits", "scores", "rewards", "reward", "end_scores", "score")


def auto_class_for(config: Any, trust_remote_code: bool) -> type:
    """The auto class that loads this checkpoint: the custom class its auto_map names (with --trust-remote-code),
    else the library's sequence-classification class."""
    auto_map = getattr(config, "auto_map", None) or {}
    if trust_remote_code:
        for name, auto_class in AUTO_CLASSES.items():
            if name in auto_map:
                return auto_class
    return AutoModelForSequenceClassification


def custom_code_hint(config: Any) -> str:
    """Said when the library's class is missing weights that the checkpoint's own code would have defined."""
    auto_map = getattr(config, "auto_map", None) or {}
    names = [auto_map[name] for name in AUTO_CLASSES if name in auto_map]
    return f" Its config names its own model code ({names[0]}): pass --trust-remote-code." if names else ""


def resolve_module(model: torch.nn.Module, dotted: str, flag: str) -> torch.nn.Module:
    """The submodule at ``dotted`` (e.g. ``model``, ``v_head``, ``reward_head.0``), or a refusal listing the choices."""
    current: Any = model
    for depth, part in enumerate(dotted.split(".")):
        child = getattr(current, part, None)
        if not isinstance(child, torch.nn.Module):
            where = ".".join(dotted.split(".")[:depth]) or type(model).__name__
            choices = [name for name, _ in current.named_children()][:12] if isinstance(current, torch.nn.Module) else []
            raise ModelRefusedError(f"{flag} {dotted}: {where} has no submodule {part!r} (it has {choices})")
        current = child
    return current


def head_output_count(head: torch.nn.Module, hidden_size: int, dtype: torch.dtype, device: torch.device) -> int:
    """How many values the head gives per position (1 for a head that returns one value without a last axis)."""
    probe = torch.zeros(1, 1, hidden_size, dtype=dtype, device=device)
    try:
        with torch.inference_mode():
            out = head(probe)
    except Exception as exc:
        raise ModelRefusedError(
            f"the head module does not take hidden states of size {hidden_size} ({type(exc).__name__}: {exc}); "
            "point --head-module at the module applied to the backbone's last hidden states"
        ) from None
    if not torch.is_tensor(out) or out.dim() not in (2, 3):
        raise ModelRefusedError("the head module must return one tensor of values per position")
    return 1 if out.dim() == 2 else int(out.shape[-1])


def hidden_size_of(model: torch.nn.Module) -> int:
    size = getattr(model.config, "hidden_size", None)
    return int(size) if isinstance(size, int) else int(model.get_input_embeddings().embedding_dim)


def forward_score(output: Any, label_index: int, length: int) -> float:
    """The score a model's own forward gives to a one-row batch of ``length`` tokens, whatever shape it returns:
    a tensor (batch, labels) or (batch,), per-position values (batch, length[, labels]) read at the last position,
    a tuple, or a ModelOutput field."""
    value = output
    if isinstance(output, Mapping):
        value = next((output[k] for k in _SCORE_FIELDS if output.get(k) is not None), None)
    elif isinstance(output, (tuple, list)) and output:
        value = output[0]
    if not torch.is_tensor(value):
        raise ModelRefusedError(
            f"the model's forward returns {type(output).__name__}, with no score tensor in it: its own score cannot "
            "be checked against the head"
        )
    row = value.detach().float()[0]
    if row.dim() >= 1 and row.shape[0] == length and (row.dim() == 2 or length > 1):
        row = row[-1]  # per-position values: the score of the whole sequence is at its last position
    return float(row.reshape(-1)[label_index if row.dim() else 0])
