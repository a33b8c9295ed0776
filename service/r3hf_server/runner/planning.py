"""How a batch will run and what it costs: the one cost model, shared by the runner (to plan its forwards), the
batcher (to cut batches to --max-batch-tokens) and the metrics (batch fill).

A batch runs as one forward per shared-prompt group (the prompt once, then its responses against the prompt's KV
cache), one forward over the remaining items (right-padded, packed into one row, or only equal lengths together),
and one unpadded pass per item that needs attention weights. Its cost is the token positions those forwards hold,
padding included: ``batch_cost`` below, equal to the ``input_ids`` the runner actually feeds its backbone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .base import EncodedItem
from .prefixes import expanded_tokens

PromptKey = tuple[int, ...]

# Items needing attention weights run one pass each. A pass costs a whole forward's fixed overhead, so a budget's worth
# of them (~180 demo-model items at 16 K tokens) ran ~2 s as one "batch" while every other request waited behind it;
# a few per batch keep a batch about as long as an ordinary one.
MAX_ALONE_PASSES_PER_BATCH = 8


@dataclass(frozen=True)
class BatchPolicy:
    """How the runner's forward runs a batch; fixed when the runner is built (after the start-up probes)."""

    share_prompts: bool = False
    min_shared_prompt_tokens: int = 16
    packed: bool = False
    equal_lengths_only: bool = False  # rows of one length per forward, never a padding mask (CPU)
    prefix_stride: int = 0  # > 0: an encoder RM, each item expanded into its prefixes (runner/prefixes.py)
    suffix_tokens: int = 0  # closing special tokens appended to every expanded prefix

    def row_tokens(self, item: EncodedItem) -> int:
        """Token positions an item holds as a row: its length, or (expanded) the sum of its prefixes' lengths."""
        return expanded_tokens(item, self.prefix_stride, self.suffix_tokens) if self.prefix_stride else len(item)

    def prompt_key(self, item: EncodedItem) -> PromptKey | None:
        """Items with the same key can share their prompt's forward; None for items that cannot."""
        if not self.share_prompts or item.needs_attention or item.response_start < self.min_shared_prompt_tokens:
            return None
        if len(item) <= item.response_start:  # nothing after the prompt to run against its cache
            return None
        return item.input_ids[: item.response_start]

    @property
    def unpadded(self) -> bool:
        """The rows outside shared-prompt groups hold no padding (packed, or only equal lengths together)."""
        return self.packed or self.equal_lengths_only or self.prefix_stride > 0

    def meter(self) -> CostMeter:
        return CostMeter(self)


@dataclass(frozen=True)
class _Group:
    """Items sharing one prompt. A group of one runs with the other rows (a prompt seen once is not worth a pass)."""

    prompt_tokens: int
    count: int = 0
    longest_rest: int = 0
    rest_tokens: int = 0

    def with_item(self, rest: int) -> _Group:
        return _Group(self.prompt_tokens, self.count + 1, max(self.longest_rest, rest), self.rest_tokens + rest)

    def cost(self, policy: BatchPolicy) -> int:
        # equal lengths only: each length's responses run against their own copy of the prompt's cache, unpadded
        responses = self.rest_tokens if policy.equal_lengths_only else self.count * self.longest_rest
        return self.prompt_tokens + responses


@dataclass(frozen=True)
class _Rows:
    """Items that run as ordinary rows of one forward."""

    count: int = 0
    longest: int = 0
    tokens: int = 0

    def with_item(self, length: int) -> _Rows:
        return _Rows(self.count + 1, max(self.longest, length), self.tokens + length)

    def cost(self, policy: BatchPolicy) -> int:
        return self.tokens if policy.unpadded else self.longest * self.count


def _cost(policy: BatchPolicy, rows: _Rows, groups: Iterable[_Group], alone_tokens: int) -> int:
    total = alone_tokens
    for group in groups:
        if group.count >= 2:
            total += group.cost(policy)
        else:
            rows = rows.with_item(group.prompt_tokens + group.longest_rest)
    return total + rows.cost(policy)


@dataclass
class CostMeter:
    """The cost of a batch being formed, kept up to date as items are added (``batch_cost`` of what was added)."""

    policy: BatchPolicy
    groups: dict[PromptKey, _Group] = field(default_factory=dict)
    rows: _Rows = field(default_factory=_Rows)
    alone_tokens: int = 0  # items needing attention weights run alone, unpadded
    alone_passes: int = 0
    count: int = 0
    tokens: int = 0  # real tokens, no padding

    def full_before(self, item: EncodedItem, max_batch_tokens: int, max_batch_size: int) -> bool:
        """Whether ``item`` must wait for the next batch (a batch always takes its first item, however large)."""
        if self.count == 0:
            return False
        if item.needs_attention and self.alone_passes >= MAX_ALONE_PASSES_PER_BATCH:
            return True
        return self.count >= max_batch_size or self.cost_with(item) > max_batch_tokens

    @property
    def cost(self) -> int:
        return _cost(self.policy, self.rows, self.groups.values(), self.alone_tokens)

    def cost_with(self, item: EncodedItem) -> int:
        """What the cost would be with ``item`` added."""
        if item.needs_attention:
            return self.cost + len(item)
        key = self.policy.prompt_key(item)
        if key is None:
            return _cost(self.policy, self.rows.with_item(self.policy.row_tokens(item)), self.groups.values(),
                         self.alone_tokens)
        grown = self.groups.get(key, _Group(len(key))).with_item(len(item) - len(key))
        return _cost(self.policy, self.rows, {**self.groups, key: grown}.values(), self.alone_tokens)

    def add(self, item: EncodedItem) -> None:
        self.count += 1
        self.tokens += len(item)
        key = self.policy.prompt_key(item)
        if item.needs_attention:
            self.alone_tokens += len(item)
            self.alone_passes += 1
        elif key is None:
            self.rows = self.rows.with_item(self.policy.row_tokens(item))
        else:
            self.groups[key] = self.groups.get(key, _Group(len(key))).with_item(len(item) - len(key))


def batch_cost(items: Sequence[EncodedItem], policy: BatchPolicy) -> int:
    """Token positions the runner's forwards hold for ``items`` under ``policy``, padding included."""
    meter = policy.meter()
    for item in items:
        meter.add(item)
    return meter.cost


@dataclass(frozen=True)
class BatchPlan:
    groups: list[tuple[PromptKey, list[int]]]  # a shared prompt and the indices of its items
    singles: list[int]  # rows of one forward
    alone: list[int] = field(default_factory=list)  # items needing attention weights: one unpadded pass each


def plan_batch(items: Sequence[EncodedItem], policy: BatchPolicy) -> BatchPlan:
    """Group items with identical prompt tokens; a prompt seen once is not worth a separate pass."""
    by_prompt: dict[PromptKey, list[int]] = {}
    singles, alone = [], []
    for index, item in enumerate(items):
        key = policy.prompt_key(item)
        if item.needs_attention:
            alone.append(index)
        elif key is None:
            singles.append(index)
        else:
            by_prompt.setdefault(key, []).append(index)
    groups = []
    for key, indices in by_prompt.items():
        if len(indices) >= 2:
            groups.append((key, indices))
        else:
            singles.extend(indices)
    return BatchPlan(groups, sorted(singles), alone)


def batching_order(items: Sequence[EncodedItem], policy: BatchPolicy) -> list[int]:
    """Indices sorted by length, with each shared-prompt group kept together at the place of its longest member."""
    units: dict[object, list[int]] = {}
    for index, item in enumerate(items):
        key = policy.prompt_key(item)
        units.setdefault(key if key is not None else ("single", index), []).append(index)
    ordered = sorted(units.values(), key=lambda unit: max(len(items[i]) for i in unit))
    return [i for unit in ordered for i in sorted(unit, key=lambda j: len(items[j]))]
