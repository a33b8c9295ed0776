"""Start-up checks on a probe sequence: is the head per-position and causal, and do the fast paths agree?"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch

from ..errors import ModelRefusedError
from ..settings import Settings
from .forward import packed_forward, padded_forward, shared_prompt_forward
from .planning import BatchPolicy

if TYPE_CHECKING:
    from .hf import HFRunner

log = logging.getLogger(__name__)

_PROBE_LENGTH = 24


def probe_ids(runner: HFRunner, length: int = _PROBE_LENGTH, salt: int = 0) -> list[int]:
    vocab, pad = runner.encoder.vocab_size, runner.model.pad_id
    ids = [(7 + 13 * i + 31 * salt) % vocab for i in range(length)]
    return [t if t != pad else (t + 1) % vocab for t in ids]


def _tolerance(runner: HFRunner) -> float:
    return 1e-3 if runner.loaded.dtype == torch.float32 else 5e-2


def _close(a: float, b: float, tolerance: float) -> bool:
    return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))


def _all_close(a: list[list[float]], b: list[list[float]], tolerance: float) -> bool:
    return all(len(x) == len(y) and all(_close(u, v, tolerance) for u, v in zip(x, y)) for x, y in zip(a, b))


def verify_per_position_head(runner: HFRunner) -> None:
    """Refuse models whose head is not a per-position function of a causal backbone.

    Our last-position score must equal the model's own pooled logit (fails for encoder RMs that pool a CLS token,
    e.g. BERT/DeBERTa), and the prefix scores of one pass must equal those of a pass over a shorter prefix (fails
    for bidirectional attention).
    """
    loaded, probe, tolerance = runner.loaded, probe_ids(runner), _tolerance(runner)
    full = padded_forward(runner.model, [probe])[0]
    with torch.inference_mode():
        pooled = loaded.model(input_ids=torch.tensor([probe], device=loaded.device)).logits
    pooled_score = float(pooled[0, loaded.label_index].float())
    if loaded.normalization is not None:
        pooled_score = (pooled_score - loaded.normalization[0]) / loaded.normalization[1]
    if not _close(full[-1], pooled_score, tolerance):
        raise ModelRefusedError(
            f"{runner.info.architecture}'s score head is not applied per position (its own score {pooled_score:.4g} "
            f"differs from the head at the last token {full[-1]:.4g}): encoder reward models that pool a CLS token "
            "cannot give prefix scores"
        )
    half = padded_forward(runner.model, [probe[: _PROBE_LENGTH // 2]])[0]
    if not _all_close([half], [full[: len(half)]], tolerance):
        raise ModelRefusedError(
            f"{runner.info.architecture} is not causal: a prefix's scores change when later tokens are added, so "
            "the score at position t is not the score of the prefix y<=t"
        )


def choose_batch_policy(runner: HFRunner, settings: Settings) -> BatchPolicy:
    """Turn on the fast paths the settings ask for, each only if it reproduces the plain padded pass here."""
    attention = getattr(runner.loaded.model.config, "_attn_implementation", "")
    want_packing = settings.packing == "on" or (settings.packing == "auto" and "flash" in str(attention))
    sequences = [probe_ids(runner, _PROBE_LENGTH, 0), probe_ids(runner, _PROBE_LENGTH // 2, 1)]
    reference = padded_forward(runner.model, sequences)
    packed = want_packing and _agrees("packing", packed_forward(runner.model, sequences), reference, runner)
    if want_packing and not packed and settings.packing == "on":
        raise ModelRefusedError(f"--packing on: {runner.info.architecture} gives other scores when packed")
    equal_only = not packed and (
        settings.padding == "none" or (settings.padding == "auto" and runner.loaded.device.type == "cpu")
    )
    share = settings.prompt_reuse and _shared_prompt_agrees(runner, equal_only)
    return BatchPolicy(
        share_prompts=share, min_shared_prompt_tokens=settings.min_shared_prompt_tokens, packed=packed,
        equal_lengths_only=equal_only,
    )


def _shared_prompt_agrees(runner: HFRunner, equal_lengths_only: bool) -> bool:
    prompt = probe_ids(runner, _PROBE_LENGTH // 2, 2)
    responses = [probe_ids(runner, 7, 3), probe_ids(runner, 3, 4)]
    try:
        shared = shared_prompt_forward(runner.model, prompt, responses, equal_lengths_only)
    except Exception as exc:  # an architecture whose cache cannot be reused this way
        log.warning("prompt reuse disabled: %s cannot run responses against a shared prompt cache (%s)",
                    runner.info.architecture, exc)
        return False
    reference = padded_forward(runner.model, [prompt + r for r in responses])
    return _agrees("prompt reuse", shared, reference, runner)


def _agrees(path: str, got: list[list[float]], reference: list[list[float]], runner: HFRunner) -> bool:
    if _all_close(got, reference, _tolerance(runner)):
        return True
    log.warning("%s disabled: %s gives scores that differ from the padded pass", path, runner.info.architecture)
    return False
