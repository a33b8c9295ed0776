"""Start-up checks on probe sequences: is the head per-position and causal, and do the fast paths agree?

No check compares passes of different lengths: in bf16 those round differently (a relative difference of 0.18 was
seen on a healthy 6-layer Llama RM), so such a check refuses healthy models. The causality check changes only the
last token of a same-length pass, which leaves every earlier position's computation identical by construction.
Agreement tolerances scale with the serving dtype's machine epsilon.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from ..errors import ModelRefusedError
from ..settings import ModelLoadSettings
from .custom_head import forward_score
from .forward import packed_forward, padded_forward, shared_prompt_forward
from .planning import BatchPolicy

if TYPE_CHECKING:
    from .hf import HFRunner

log = logging.getLogger(__name__)

_PROBE_LENGTH = 24
# Two mathematically equal computations that round differently (another kernel, another batch shape) differ by a
# few units of rounding per layer; 8 epsilons of the score scale bounds that on every model we measured (see
# docs/models.md) and is far below the O(1) error of a wrong fast path (attention leaking across packed rows).
_NOISE_EPSILONS = 8.0
# fp32 is held to the suite's exactness contract, 1e-4, rather than its far smaller epsilon: GPU kernels reorder
# fp32 sums over thousands of channels.
_FP32_FLOOR = 1e-4
# Same-length passes that differ only in the last token compute earlier positions with identical operations, so
# a causal model repeats them to the bit; one epsilon absorbs a nondeterministic kernel.
_CAUSAL_EPSILONS = 1.0
_CAUSAL_REPLACEMENTS = 3


def noise_tolerance(dtype: torch.dtype) -> float:
    """Relative tolerance (of the score scale) for two equal-in-exact-arithmetic computations in ``dtype``."""
    return max(_FP32_FLOOR, _NOISE_EPSILONS * torch.finfo(dtype).eps)


def score_scale(reference: Sequence[Sequence[float]]) -> float:
    """1 + mean |s|: the scale every agreement check is relative to."""
    values = [abs(v) for row in reference for v in row]
    return 1.0 + (sum(values) / len(values) if values else 0.0)


def max_deviation(got: Sequence[Sequence[float]], reference: Sequence[Sequence[float]]) -> float:
    if len(got) != len(reference) or any(len(a) != len(b) for a, b in zip(got, reference)):
        return float("inf")
    return max((abs(u - v) for a, b in zip(got, reference) for u, v in zip(a, b)), default=0.0)


def probe_ids(runner: HFRunner, length: int = _PROBE_LENGTH, salt: int = 0) -> list[int]:
    vocab, pad = runner.encoder.vocab_size, runner.model.pad_id
    ids = [(7 + 13 * i + 31 * salt) % vocab for i in range(length)]
    return [t if t != pad else (t + 1) % vocab for t in ids]


def verify_per_position_head(runner: HFRunner) -> None:
    """Refuse models whose head is not a per-position function of a causal backbone.

    Our last-position score must equal the model's own score (fails for models that pool a CLS token or pool
    otherwise), and a prefix's scores must not change when only a later token does (fails for bidirectional
    attention).
    """
    probe = probe_ids(runner)
    full = padded_forward(runner.model, [probe])[0]
    own = own_forward_score(runner, probe)
    tolerance = noise_tolerance(runner.loaded.dtype) * score_scale([full])
    if abs(full[-1] - own) > tolerance:
        raise ModelRefusedError(
            f"{runner.info.architecture}'s score head is not applied per position (its own score {own:.4g} "
            f"differs from the head at the last token {full[-1]:.4g} by more than {tolerance:.2g}): it pools "
            "another position, so one pass cannot give prefix scores"
        )
    deviation = causal_deviation(runner, probe, full)
    allowed = _CAUSAL_EPSILONS * torch.finfo(runner.loaded.dtype).eps * score_scale([full])
    if deviation > allowed:
        raise ModelRefusedError(
            f"{runner.info.architecture} is not causal: changing only the last token moves earlier prefix scores "
            f"by {deviation:.3g} (allowed {allowed:.2g}), so the score at position t is not the score of y<=t"
        )


def own_forward_score(runner: HFRunner, ids: list[int]) -> float:
    """The model's own forward score of ``ids`` (its pooling, its head), normalised like ours."""
    loaded = runner.loaded
    with torch.inference_mode():
        output = loaded.model(input_ids=torch.tensor([ids], device=loaded.device))
    score = forward_score(output, loaded.label_index, len(ids))
    if loaded.normalization is not None:
        score = (score - loaded.normalization[0]) / loaded.normalization[1]
    return score


def causal_deviation(runner: HFRunner, probe: list[int], full: list[float]) -> float:
    """Largest change of an earlier prefix score when only the last token changes (same length, same kernels)."""
    vocab = runner.encoder.vocab_size
    variants = []
    for k in range(1, _CAUSAL_REPLACEMENTS + 1):
        last = (probe[-1] + k * (vocab // (_CAUSAL_REPLACEMENTS + 1))) % vocab
        variants.append(probe[:-1] + [last if last != runner.model.pad_id else (last + 1) % vocab])
    # One pass each: the same batch shape as ``full``, so even the matmul kernels' blocking is the same.
    changed = [padded_forward(runner.model, [variant])[0] for variant in variants]
    return max(max_deviation([row[:-1]], [full[:-1]]) for row in changed)


def choose_batch_policy(runner: HFRunner, settings: ModelLoadSettings) -> BatchPolicy:
    """Turn on the fast paths the settings ask for, each only if it reproduces the plain padded pass here."""
    want_packing = settings.packing == "on" or (settings.packing == "auto" and "flash" in runner.loaded.attention)
    packed = want_packing and _packing_agrees(runner)
    if want_packing and not packed and settings.packing == "on":
        raise ModelRefusedError(
            f"--packing on: {runner.info.architecture} gives other scores when packed (see the log); "
            "use --packing auto"
        )
    equal_only = not packed and (
        settings.padding == "none" or (settings.padding == "auto" and runner.loaded.device.type == "cpu")
    )
    share = settings.prompt_reuse and _shared_prompt_agrees(runner, equal_only)
    return BatchPolicy(
        share_prompts=share, min_shared_prompt_tokens=settings.min_shared_prompt_tokens, packed=packed,
        equal_lengths_only=equal_only,
    )


def _packing_agrees(runner: HFRunner) -> bool:
    """Packed rows must match the padded pass within the dtype's noise, and a sequence's scores must not move by a
    single bit when only its row-mate's tokens change (a leak across sequences can hide inside bf16 noise; it
    cannot hide from a same-shape comparison)."""
    first, second = probe_ids(runner, _PROBE_LENGTH, 0), probe_ids(runner, _PROBE_LENGTH // 2, 1)
    reference = padded_forward(runner.model, [first, second])
    if not _agrees("packing", lambda: packed_forward(runner.model, [first, second]), reference, runner):
        return False
    return _isolated(
        "packing", runner, lambda mate: packed_forward(runner.model, [mate, second])[1], first,
    )


def _shared_prompt_agrees(runner: HFRunner, equal_lengths_only: bool) -> bool:
    prompt = probe_ids(runner, _PROBE_LENGTH // 2, 2)
    responses = [probe_ids(runner, 7, 3), probe_ids(runner, 3, 4)]
    reference = padded_forward(runner.model, [prompt + r for r in responses])
    if not _agrees(
        "prompt reuse", lambda: shared_prompt_forward(runner.model, prompt, responses, equal_lengths_only),
        reference, runner,
    ):
        return False
    kept = probe_ids(runner, 7, 5)
    return _isolated(
        "prompt reuse", runner,
        lambda mate: shared_prompt_forward(runner.model, prompt, [mate, kept], equal_lengths_only)[1], responses[0],
    )


def _isolated(path: str, runner: HFRunner, scores_beside, mate: list[int]) -> bool:  # type: ignore[no-untyped-def]
    """``scores_beside(mate)`` scores one fixed sequence next to ``mate``; changing every token of the mate (same
    length, so the same kernels) must not change them beyond the run-to-run noise of repeating the pass."""
    try:
        baseline, repeat = scores_beside(mate), scores_beside(mate)
        other = scores_beside([(t + 1) % runner.encoder.vocab_size or 1 for t in mate])
    except Exception as exc:
        log.warning("%s disabled: %s cannot run it (%s: %s)", path, runner.info.architecture, type(exc).__name__, exc)
        return False
    noise = max_deviation([repeat], [baseline])
    leak = max_deviation([other], [baseline])
    if leak <= 2 * noise:
        return True
    log.warning(
        "%s disabled: in %s a sequence's scores move by %.3g when only the tokens beside it change (repeat noise "
        "%.3g): the path lets sequences see each other", path, runner.info.architecture, leak, noise,
    )
    return False


def _agrees(path: str, run, reference: list[list[float]], runner: HFRunner) -> bool:  # type: ignore[no-untyped-def]
    try:
        got = run()
    except Exception as exc:  # an architecture whose cache or masks cannot be used this way
        log.warning("%s disabled: %s cannot run it (%s: %s)", path, runner.info.architecture, type(exc).__name__, exc)
        return False
    deviation = max_deviation(got, reference)
    tolerance = noise_tolerance(runner.loaded.dtype) * score_scale(reference)
    if deviation <= tolerance:
        log.info("%s verified: max deviation %.3g from the padded pass (tolerance %.3g)", path, deviation, tolerance)
        return True
    log.warning(
        "%s disabled: %s gives scores %.3g away from the padded pass, beyond the %s tolerance %.3g",
        path, runner.info.architecture, deviation, str(runner.loaded.dtype).removeprefix("torch."), tolerance,
    )
    return False
