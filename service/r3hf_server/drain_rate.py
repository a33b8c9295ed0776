"""How fast the server is answering items, so a 429's ``Retry-After`` says when the work ahead will have drained.

The rate is measured while the worker is busy (items per second of forward time over the last batches), not per
wall-clock second: after an idle spell a burst is still told the true drain time instead of "unknown". Retry-After
is the items that must be answered before a refused request would fit, divided by that rate, in whole seconds
within [1, 30] (RFC 9110 delta-seconds; clients add their own jitter).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any

MIN_RETRY_AFTER_S, MAX_RETRY_AFTER_S = 1, 30
_RECENT_BATCHES = 32


class DrainRate:
    def __init__(self) -> None:
        self._batches: deque[tuple[int, float]] = deque(maxlen=_RECENT_BATCHES)  # (items, forward seconds)
        self._lock = threading.Lock()

    def record(self, items: int, seconds: float) -> None:
        with self._lock:
            self._batches.append((items, max(seconds, 1e-6)))

    def items_per_s(self) -> float | None:
        with self._lock:
            items = sum(n for n, _ in self._batches)
            seconds = sum(s for _, s in self._batches)
        return items / seconds if items else None

    def retry_after_s(self, items_ahead: int) -> int:
        """Seconds until ``items_ahead`` items are answered at the measured rate, within [1, 30]."""
        rate = self.items_per_s()
        if items_ahead <= 0 or rate is None:
            return MIN_RETRY_AFTER_S
        return max(MIN_RETRY_AFTER_S, min(MAX_RETRY_AFTER_S, math.ceil(items_ahead / rate)))


class MeteredObserver:
    """A batch observer that counts answered items into a DrainRate and forwards every hook to ``inner``."""

    def __init__(self, inner: Any, rate: DrainRate) -> None:
        self._inner, self._rate = inner, rate

    def batch_done(self, stats: Any) -> None:
        self._rate.record(stats.size, stats.inference_seconds)
        if self._inner is not None:
            self._inner.batch_done(stats)

    def __getattr__(self, name: str) -> Any:
        if self._inner is None:
            return lambda *args, **kwargs: None
        return getattr(self._inner, name)
