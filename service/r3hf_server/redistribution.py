"""From per-position prefix scores to a sequence score and per-token rewards (R3HF / RED, arXiv 2411.08302).

Four ways to spread a sequence score over the response tokens, all mixed with sparse by beta (Eq. 7):

- ``r3hf`` (Eq. 6): ``r_t = R(x, y<=t) - R(x, y<=t-1)``, the change of the prefix score at token t.
- ``attention`` (ABC, Chan et al. 2024, "Dense Reward for Free in RLHF"): ``r_t = R(x, y) * a_t / sum_s a_s``, where
  ``a_t`` is the last layer's head-averaged attention from the final position to response token t.
- ``uniform``: ``r_t = R(x, y) / T`` for a response of T tokens.
- ``sparse`` (Eq. 3): 0 everywhere but the last response token, which gets ``R(x, y)``.

All arithmetic is in Python floats (float64) so the rewards sum exactly as documented (``score - prompt_score`` for
r3hf with the prompt baseline, ``score`` otherwise) up to float64 rounding, whatever dtype the model ran in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from r3hf_client.options import Baseline, Redistribution


@dataclass(frozen=True)
class RedistributionOptions:
    redistribution: Redistribution = "r3hf"
    beta: float = 1.0
    baseline: Baseline = "prompt"

    @property
    def needs_attention(self) -> bool:
        """Whether the forward must also report the final position's attention (only ``attention`` with beta > 0)."""
        return self.redistribution == "attention" and self.beta > 0.0


@dataclass(frozen=True)
class ItemScores:
    score: float
    prompt_score: float
    token_rewards: list[float]


@dataclass(frozen=True)
class _Credit:
    """What a dense strategy may read: the prefix-score curve, the response span [p, q) and the attention row."""

    prefix_scores: Sequence[float]
    p: int
    q: int
    score: float
    prompt_score: float
    baseline: Baseline
    final_attention: Sequence[float] | None


def sequence_scores(prefix_scores: Sequence[float], response_start: int, response_end: int) -> tuple[float, float]:
    """``(R(x, y), R(x, empty))``: the score at the last token, and at the last token before the response.

    With no token before the response the prompt score is 0. An empty response scores as its prompt.
    """
    prompt_score = float(prefix_scores[response_start - 1]) if response_start > 0 else 0.0
    if response_end == response_start:
        return prompt_score, prompt_score
    return float(prefix_scores[-1]), prompt_score


def token_rewards(
    prefix_scores: Sequence[float], response_start: int, response_end: int, options: RedistributionOptions,
    final_attention: Sequence[float] | None = None,
) -> ItemScores:
    """Per-token rewards of one item. ``final_attention`` (one weight per position) is required for ``attention``."""
    score, prompt_score = sequence_scores(prefix_scores, response_start, response_end)
    if response_end == response_start:
        return ItemScores(score, prompt_score, [])
    sparse = [0.0] * (response_end - response_start - 1) + [score]
    if options.redistribution == "sparse" or options.beta == 0.0:
        return ItemScores(score, prompt_score, sparse)
    credit = _Credit(
        prefix_scores, response_start, response_end, score, prompt_score, options.baseline, final_attention
    )
    dense = DENSE_STRATEGIES[options.redistribution](credit)
    if options.beta == 1.0:
        return ItemScores(score, prompt_score, dense)
    beta = options.beta  # Eq. 7
    return ItemScores(score, prompt_score, [beta * d + (1.0 - beta) * s for d, s in zip(dense, sparse)])


def _r3hf_rewards(c: _Credit) -> list[float]:
    """Eq. 6: r_t = R(x, y<=t) - R(x, y<=t-1); the suffix's change (EOS, template end) goes to the last token."""
    previous = c.prompt_score if c.baseline == "prompt" else 0.0
    rewards = []
    for t in range(c.p, c.q):
        current = float(c.prefix_scores[t])
        rewards.append(current - previous)
        previous = current
    rewards[-1] += float(c.prefix_scores[-1]) - float(c.prefix_scores[c.q - 1])
    return rewards


def _uniform_rewards(c: _Credit) -> list[float]:
    return [c.score / (c.q - c.p)] * (c.q - c.p)


def _attention_rewards(c: _Credit) -> list[float]:
    """ABC: the score split in proportion to the final position's attention, renormalised over the response.

    Attention to the prompt and to suffix tokens is dropped by the renormalisation, so the rewards sum to the
    score. A row with no mass on the response (possible only through underflow) falls back to uniform.
    """
    if c.final_attention is None:
        raise ValueError("the attention strategy needs the final position's attention weights")
    weights = [max(float(w), 0.0) for w in c.final_attention[c.p : c.q]]
    total = math.fsum(weights)
    if not total > 0.0:
        return _uniform_rewards(c)
    return [c.score * w / total for w in weights]


DENSE_STRATEGIES: dict[str, Callable[[_Credit], list[float]]] = {
    "r3hf": _r3hf_rewards,
    "uniform": _uniform_rewards,
    "attention": _attention_rewards,
}


def all_finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in values)
