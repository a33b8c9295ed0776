"""Deterministic fault injection around any runner, for tests of what the layers above do when the model misbehaves.

Test-only (it does not ship in the wheel); it implements the same Runner contract as the fake and real runners.

``FaultyRunner(inner, Faults(...))`` behaves like ``inner`` (the fake runner or the real one) except that a batch can
be made slow, run out of memory above a token budget, raise, or return NaN / inf for chosen items. Faults are chosen
by content (a token id in the item) or by size, so a test can mix faulty and healthy items in one batch.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from r3hf_server.runner.base import EncodedItem, ForwardResult, ItemInput, ModelInfo, Runner, TruncationMode
from r3hf_server.runner.planning import BatchPolicy, batch_cost

# Worded like torch's own error, so the real detection (runner.memory.is_out_of_memory) is what recognises it.
OOM_MESSAGE = "CUDA out of memory. Tried to allocate 2.00 GiB (injected by FaultyRunner)"


@dataclass
class Faults:
    delay_s: float = 0.0  # every forward takes at least this long
    oom_above_tokens: int | None = None  # a forward costlier than this (planning.batch_cost) runs out of memory
    fail_on_token: int | None = None  # a forward containing this token id raises RuntimeError
    nan_on_token: int | None = None  # an item containing this token id scores NaN at that position
    inf_on_token: int | None = None  # ... +inf
    calls: list[int] = field(default_factory=list)  # sizes of every forward attempted, failed ones included


class FaultyRunner:
    def __init__(self, inner: Runner, faults: Faults) -> None:
        self.inner = inner
        self.faults = faults
        self.release = threading.Event()  # set it to end every injected delay at once

    @property
    def info(self) -> ModelInfo:
        return self.inner.info

    @property
    def batch_policy(self) -> BatchPolicy:
        return self.inner.batch_policy

    def encode(self, item: ItemInput, truncation: TruncationMode, with_tokens: bool) -> EncodedItem:
        return self.inner.encode(item, truncation, with_tokens)

    def forward(self, batch: Sequence[EncodedItem]) -> list[ForwardResult]:
        faults = self.faults
        faults.calls.append(len(batch))
        if faults.delay_s:
            self.release.wait(faults.delay_s)
        if faults.oom_above_tokens is not None and batch_cost(batch, self.batch_policy) > faults.oom_above_tokens:
            raise RuntimeError(OOM_MESSAGE)
        if faults.fail_on_token is not None and any(faults.fail_on_token in item.input_ids for item in batch):
            raise RuntimeError("injected forward failure: device-side assert triggered (secret detail)")
        results = self.inner.forward(batch)
        return [self._poison(item, result) for item, result in zip(batch, results)]

    def _poison(self, item: EncodedItem, result: ForwardResult) -> ForwardResult:
        scores = list(result.prefix_scores)
        for token, value in ((self.faults.nan_on_token, math.nan), (self.faults.inf_on_token, math.inf)):
            if token is not None and token in item.input_ids:
                scores[item.input_ids.index(token)] = value
        return replace(result, prefix_scores=scores)
