"""How a batch will run, and what it costs: pure functions shared by the batcher (to cut batches) and the runner.

A batch runs as one forward per shared-prompt group (the prompt once, then its responses right-padded against the
prompt's KV cache) plus one forward over the remaining items (right-padded, or packed into one row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .base import EncodedItem

PromptKey = tuple[int, ...]


@dataclass(frozen=True)
class BatchPolicy:
    share_prompts: bool = False
    min_shared_prompt_tokens: int = 16
    packed: bool = False
    equal_lengths_only: bool = False  # rows of one length per forward, never a padding mask (CPU)

    def prompt_key(self, item: EncodedItem) -> PromptKey | None:
        """Items with the same key can share their prompt's forward; None for items that cannot."""
        if not self.share_prompts or item.response_start < self.min_shared_prompt_tokens:
            return None
        if len(item) <= item.response_start:  # nothing after the prompt to run against its cache
            return None
        return item.input_ids[: item.response_start]

    def meter(self) -> CostMeter:
        return CostMeter(self)


@dataclass
class _Group:
    prompt_tokens: int
    count: int = 0
    longest_rest: int = 0

    @property
    def cost(self) -> int:
        return self.prompt_tokens + self.count * self.longest_rest


@dataclass
class CostMeter:
    """Tokens a batch occupies in the forward passes it will run, kept up to date as items are added."""

    policy: BatchPolicy
    groups: dict[PromptKey, _Group] = field(default_factory=dict)
    singles_count: int = 0
    singles_longest: int = 0
    singles_tokens: int = 0
    count: int = 0

    @property
    def cost(self) -> int:
        unpadded = self.policy.packed or self.policy.equal_lengths_only
        singles = self.singles_tokens if unpadded else self.singles_longest * self.singles_count
        return singles + sum(g.cost for g in self.groups.values())

    def cost_with(self, item: EncodedItem) -> int:
        key = self.policy.prompt_key(item)
        if key is None:
            if self.policy.packed or self.policy.equal_lengths_only:
                return self.cost + len(item)
            longest = max(self.singles_longest, len(item))
            return self.cost - self.singles_longest * self.singles_count + longest * (self.singles_count + 1)
        group = self.groups.get(key, _Group(len(key)))
        rest = len(item) - len(key)
        grown = _Group(group.prompt_tokens, group.count + 1, max(group.longest_rest, rest))
        return self.cost - (group.cost if key in self.groups else 0) + grown.cost

    def add(self, item: EncodedItem) -> None:
        self.count += 1
        key = self.policy.prompt_key(item)
        if key is None:
            self.singles_count += 1
            self.singles_longest = max(self.singles_longest, len(item))
            self.singles_tokens += len(item)
            return
        group = self.groups.setdefault(key, _Group(len(key)))
        group.count += 1
        group.longest_rest = max(group.longest_rest, len(item) - len(key))


@dataclass(frozen=True)
class BatchPlan:
    groups: list[tuple[PromptKey, list[int]]]  # a shared prompt and the indices of its items
    singles: list[int]


def plan_batch(items: Sequence[EncodedItem], policy: BatchPolicy) -> BatchPlan:
    """Group items with identical prompt tokens; a prompt seen once is not worth a separate pass."""
    by_prompt: dict[PromptKey, list[int]] = {}
    singles = []
    for index, item in enumerate(items):
        key = policy.prompt_key(item)
        if key is None:
            singles.append(index)
        else:
            by_prompt.setdefault(key, []).append(index)
    groups = []
    for key, indices in by_prompt.items():
        if len(indices) >= 2:
            groups.append((key, indices))
        else:
            singles.extend(indices)
    return BatchPlan(groups, sorted(singles))


def batching_order(items: Sequence[EncodedItem], policy: BatchPolicy) -> list[int]:
    """Indices sorted by length, with each shared-prompt group kept together at the place of its longest member."""
    units: dict[object, list[int]] = {}
    for index, item in enumerate(items):
        key = policy.prompt_key(item)
        units.setdefault(key if key is not None else ("single", index), []).append(index)
    ordered = sorted(units.values(), key=lambda unit: max(len(items[i]) for i in unit))
    return [i for unit in ordered for i in sorted(unit, key=lambda j: len(items[j]))]
