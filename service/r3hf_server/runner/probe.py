"""Start-up checks on probe sequences: is the head per-position and causal, and do the fast paths agree?

No check compares passes of different lengths: in bf16 those round differently (a relative difference of 0.18 was
seen on a healthy 6-layer Llama RM), so such a check refuses healthy models. The causality check changes only the
last token of a same-length pass, which leaves every earlier position's computation identical by construction.
Agreement tolerances scale with the serving dtype's machine epsilon.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..errors import ModelRefusedError
from ..settings import ModelLoadSettings
from .forward import ScoreHead, packed_forward, padded_forward, shared_prompt_forward
from .planning import BatchPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeTarget:
    """What the probes may read of a loaded model (built by ``HFRunner.probe_target``), and nothing else."""

    model: ScoreHead  # the backbone and score head, as every forward path runs them
    own_score: Callable[[list[int]], float]  # the model's own forward score of a sequence (its pooling, its head)
    vocab_size: int
    dtype: torch.dtype
    device_type: str  # cpu, cuda, ...
    attention: str  # the attention implementation transformers runs
    architecture: str  # for messages


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
# How many times the padded pass's own batch-composition rounding (``composition_noise``) a same-shape check allows.
_COMPOSITION_FACTOR = 4.0


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


def probe_ids(target: ProbeTarget, length: int = _PROBE_LENGTH, salt: int = 0) -> list[int]:
    vocab, pad = target.vocab_size, target.model.pad_id
    ids = [(7 + 13 * i + 31 * salt) % vocab for i in range(length)]
    return [t if t != pad else (t + 1) % vocab for t in ids]


def verify_per_position_head(target: ProbeTarget) -> None:
    """Refuse models whose head is not a per-position function of a causal backbone.

    Our last-position score must equal the model's own score (fails for models that pool a CLS token or pool
    otherwise), and a prefix's scores must not change when only a later token does (fails for bidirectional
    attention).
    """
    probe = probe_ids(target)
    full = padded_forward(target.model, [probe])[0]
    own = target.own_score(probe)
    tolerance = noise_tolerance(target.dtype) * score_scale([full])
    if abs(full[-1] - own) > tolerance:
        raise ModelRefusedError(
            f"{target.architecture}'s score head is not applied per position (its own score {own:.4g} "
            f"differs from the head at the last token {full[-1]:.4g} by more than {tolerance:.2g}): it pools "
            "another position, so one pass cannot give prefix scores"
        )
    deviation = causal_deviation(target, probe, full)
    allowed = max(
        _CAUSAL_EPSILONS * torch.finfo(target.dtype).eps * score_scale([full]),
        _COMPOSITION_FACTOR * composition_noise(target),
        # Mixture-of-experts layers regroup a row's tokens by expert, so a new last token changes the matmul shapes
        # of earlier tokens: equal only within rounding (1e-6 in fp32 for Qwen3-MoE and gpt-oss), not to the bit.
        noise_tolerance(target.dtype) * score_scale([full]) if routes_experts(target.model.backbone) else 0.0,
    )
    if deviation > allowed:
        raise ModelRefusedError(
            f"{target.architecture} is not causal: changing only the last token moves earlier prefix scores "
            f"by {deviation:.3g} (allowed {allowed:.2g}), so the score at position t is not the score of y<=t"
        )


def composition_noise(target: ProbeTarget) -> float:
    """How far a sequence's scores move in the plain padded pass when only another row of the same forward changes.

    Padded rows are independent by construction, so this is pure rounding: zero for most models, a few units of
    rounding for mixture-of-experts layers, which group every token of a forward by expert (Qwen3-MoE and gpt-oss
    move by ~1e-6 in fp32). Causality and isolation allow this much, so MoE models are not refused for it.
    """
    fixed, mate = probe_ids(target, _PROBE_LENGTH, 6), probe_ids(target, _PROBE_LENGTH, 7)
    other = [(t + 1) % target.vocab_size or 1 for t in mate]
    with_mate = padded_forward(target.model, [fixed, mate])[0]
    with_other = padded_forward(target.model, [fixed, other])[0]
    return max_deviation([with_other], [with_mate])


def routes_experts(backbone: torch.nn.Module) -> bool:
    config = getattr(backbone, "config", None)
    counts = (getattr(config, name, None) for name in ("num_experts", "num_local_experts", "n_routed_experts"))
    return any(isinstance(count, int) and count > 1 for count in counts)


def causal_deviation(target: ProbeTarget, probe: list[int], full: list[float]) -> float:
    """Largest change of an earlier prefix score when only the last token changes (same length, same kernels)."""
    vocab = target.vocab_size
    variants = []
    for k in range(1, _CAUSAL_REPLACEMENTS + 1):
        last = (probe[-1] + k * (vocab // (_CAUSAL_REPLACEMENTS + 1))) % vocab
        variants.append(probe[:-1] + [last if last != target.model.pad_id else (last + 1) % vocab])
    # One pass each: the same batch shape as ``full``, so even the matmul kernels' blocking is the same.
    changed = [padded_forward(target.model, [variant])[0] for variant in variants]
    return max(max_deviation([row[:-1]], [full[:-1]]) for row in changed)


def choose_batch_policy(target: ProbeTarget, settings: ModelLoadSettings) -> BatchPolicy:
    """Turn on the fast paths the settings ask for, each only if it reproduces the plain padded pass here."""
    want_packing = settings.packing == "on" or (settings.packing == "auto" and "flash" in target.attention)
    packed = want_packing and _packing_agrees(target)
    if want_packing and not packed and settings.packing == "on":
        raise ModelRefusedError(
            f"--packing on: {target.architecture} gives other scores when packed (see the log); "
            "use --packing auto"
        )
    equal_only = not packed and (
        settings.padding == "none" or (settings.padding == "auto" and target.device_type == "cpu")
    )
    share = settings.prompt_reuse and _shared_prompt_agrees(target, equal_only)
    return BatchPolicy(
        share_prompts=share, min_shared_prompt_tokens=settings.min_shared_prompt_tokens, packed=packed,
        equal_lengths_only=equal_only,
    )


def _packing_agrees(target: ProbeTarget) -> bool:
    """Packed rows must match the padded pass within the dtype's noise, and a sequence's scores must not move by a
    single bit when only its row-mate's tokens change (a leak across sequences can hide inside bf16 noise; it
    cannot hide from a same-shape comparison)."""
    first, second = probe_ids(target, _PROBE_LENGTH, 0), probe_ids(target, _PROBE_LENGTH // 2, 1)
    reference = padded_forward(target.model, [first, second])
    if not _agrees("packing", lambda: packed_forward(target.model, [first, second]), reference, target):
        return False
    return _isolated(
        "packing", target, lambda mate: packed_forward(target.model, [mate, second])[1], first,
    )


def _shared_prompt_agrees(target: ProbeTarget, equal_lengths_only: bool) -> bool:
    prompt = probe_ids(target, _PROBE_LENGTH // 2, 2)
    responses = [probe_ids(target, 7, 3), probe_ids(target, 3, 4)]
    reference = padded_forward(target.model, [prompt + r for r in responses])
    if not _agrees(
        "prompt reuse", lambda: shared_prompt_forward(target.model, prompt, responses, equal_lengths_only),
        reference, target,
    ):
        return False
    kept = probe_ids(target, 7, 5)
    return _isolated(
        "prompt reuse", target,
        lambda mate: shared_prompt_forward(target.model, prompt, [mate, kept], equal_lengths_only)[1], responses[0],
    )


def _isolated(path: str, target: ProbeTarget, scores_beside, mate: list[int]) -> bool:  # type: ignore[no-untyped-def]
    """``scores_beside(mate)`` scores one fixed sequence next to ``mate``; changing every token of the mate (same
    length, so the same kernels) must not change them beyond the run-to-run noise of repeating the pass."""
    try:
        baseline, repeat = scores_beside(mate), scores_beside(mate)
        other = scores_beside([(t + 1) % target.vocab_size or 1 for t in mate])
    except Exception as exc:
        log.warning("%s disabled: %s cannot run it (%s: %s)", path, target.architecture, type(exc).__name__, exc)
        return False
    noise = max(
        2 * max_deviation([repeat], [baseline]), _COMPOSITION_FACTOR * composition_noise(target),
        noise_tolerance(target.dtype) * score_scale([baseline]) if routes_experts(target.model.backbone) else 0.0,
    )
    leak = max_deviation([other], [baseline])
    if leak <= noise:
        return True
    log.warning(
        "%s disabled: in %s a sequence's scores move by %.3g when only the tokens beside it change (allowed: the "
        "padded pass's own rounding, %.3g): the path lets sequences see each other", path, target.architecture, leak,
        noise,
    )
    return False


def _agrees(path: str, run, reference: list[list[float]], target: ProbeTarget) -> bool:  # type: ignore[no-untyped-def]
    try:
        got = run()
    except Exception as exc:  # an architecture whose cache or masks cannot be used this way
        log.warning("%s disabled: %s cannot run it (%s: %s)", path, target.architecture, type(exc).__name__, exc)
        return False
    deviation = max_deviation(got, reference)
    tolerance = noise_tolerance(target.dtype) * score_scale(reference)
    if deviation <= tolerance:
        log.info("%s verified: max deviation %.3g from the padded pass (tolerance %.3g)", path, deviation, tolerance)
        return True
    log.warning(
        "%s disabled: %s gives scores %.3g away from the padded pass, beyond the %s tolerance %.3g",
        path, target.architecture, deviation, str(target.dtype).removeprefix("torch."), tolerance,
    )
    return False
