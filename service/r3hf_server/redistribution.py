"""From per-position prefix scores to a sequence score and per-token rewards (R3HF / RED, arXiv 2411.08302).

All arithmetic is in Python floats (float64) so the rewards telescope to ``score - prompt_score`` up to float64
rounding, whatever dtype the model ran in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Redistribution = Literal["r3hf", "sparse"]
Baseline = Literal["prompt", "zero"]


@dataclass(frozen=True)
class RedistributionOptions:
    redistribution: Redistribution = "r3hf"
    beta: float = 1.0
    baseline: Baseline = "prompt"


@dataclass(frozen=True)
class ItemScores:
    score: float
    prompt_score: float
    token_rewards: list[float]


def sequence_scores(prefix_scores: Sequence[float], response_start: int, response_end: int) -> tuple[float, float]:
    """``(R(x, y), R(x, empty))``: the score at the last token, and at the last token before the response.

    With no token before the response the prompt score is 0. An empty response scores as its prompt.
    """
    prompt_score = float(prefix_scores[response_start - 1]) if response_start > 0 else 0.0
    if response_end == response_start:
        return prompt_score, prompt_score
    return float(prefix_scores[-1]), prompt_score


def token_rewards(
    prefix_scores: Sequence[float], response_start: int, response_end: int, options: RedistributionOptions
) -> ItemScores:
    score, prompt_score = sequence_scores(prefix_scores, response_start, response_end)
    if response_end == response_start:
        return ItemScores(score, prompt_score, [])
    dense = _dense_rewards(prefix_scores, response_start, response_end, prompt_score, options.baseline)
    sparse = [0.0] * (len(dense) - 1) + [score]
    if options.redistribution == "sparse" or options.beta == 0.0:
        return ItemScores(score, prompt_score, sparse)
    if options.beta == 1.0:
        return ItemScores(score, prompt_score, dense)
    beta = options.beta  # Eq. 7
    return ItemScores(score, prompt_score, [beta * d + (1.0 - beta) * s for d, s in zip(dense, sparse)])


def _dense_rewards(
    prefix_scores: Sequence[float], p: int, q: int, prompt_score: float, baseline: Baseline
) -> list[float]:
    """Eq. 6: r_t = R(x, y<=t) - R(x, y<=t-1); the suffix's change (EOS, template end) goes to the last token."""
    previous = prompt_score if baseline == "prompt" else 0.0
    rewards = []
    for t in range(p, q):
        current = float(prefix_scores[t])
        rewards.append(current - previous)
        previous = current
    rewards[-1] += float(prefix_scores[-1]) - float(prefix_scores[q - 1])
    return rewards


def all_finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in values)
