"""Deterministic fault injection around any runner, for tests of what the layers above do when the model misbehaves.

``FaultyRunner(inner, Faults(...))`` behaves like ``inner`` (the fake runner or the real one) except that a batch can
be made slow, run out of memory above a token budget, raise, or return NaN / inf for chosen items. Faults are chosen
by content (a token id in the item) or by size, so a test can mix faulty and healthy items in one batch.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .base import EncodedItem, ItemInput, TruncationMode

# Worded like torch's own error, so the real detection (runner.memory.is_out_of_memory) is what recognises it.
OOM_MESSAGE = "CUDA out of memory. Tried to allocate 2.00 GiB (injected by FaultyRunner)"


@dataclass
class Faults:
    delay_s: float = 0.0  # every forward takes at least this long
    oom_above_tokens: int | None = None  # a forward whose padded size (longest x count) exceeds this runs out of memory
    fail_on_token: int | None = None  # a forward containing this token id raises RuntimeError
    nan_on_token: int | None = None  # an item containing this token id scores NaN at that position
    inf_on_token: int | None = None  # ... +inf
    calls: list[int] = field(default_factory=list)  # sizes of every forward attempted, failed ones included


class FaultyRunner:
    def __init__(self, inner, faults: Faults) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.faults = faults
        self.info = inner.info
        self.batch_policy = inner.batch_policy
        self.release = threading.Event()  # set it to end every injected delay at once

    def encode(self, item: ItemInput, truncation: TruncationMode, with_tokens: bool) -> EncodedItem:
        return self.inner.encode(item, truncation, with_tokens)

    def prefix_scores(self, batch: Sequence[EncodedItem]) -> list[list[float]]:
        faults = self.faults
        faults.calls.append(len(batch))
        if faults.delay_s:
            self.release.wait(faults.delay_s)
        padded = max(len(item) for item in batch) * len(batch)
        if faults.oom_above_tokens is not None and padded > faults.oom_above_tokens:
            raise RuntimeError(OOM_MESSAGE)
        if faults.fail_on_token is not None and any(faults.fail_on_token in item.input_ids for item in batch):
            raise RuntimeError("injected forward failure: device-side assert triggered (secret detail)")
        results = self.inner.prefix_scores(batch)
        return [self._poison(item, scores) for item, scores in zip(batch, results)]

    def _poison(self, item: EncodedItem, scores: list[float]) -> list[float]:
        for token, value in ((self.faults.nan_on_token, math.nan), (self.faults.inf_on_token, math.inf)):
            if token is not None and token in item.input_ids:
                scores[item.input_ids.index(token)] = value  # in place: keeps a list subclass's extras
        return scores
