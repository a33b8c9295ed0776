"""Admission control: a bound on the items the server holds at once, so no burst can grow its memory without limit.

An item is held from the moment its request is admitted (before tokenizing) until its request is answered, so the
bound covers tokenized items, the queue, the batcher's window and the forward. Past the bound a request is refused
whole with 429 and ``Retry-After``: a trainer backs off and retries, instead of the server queueing work it would
answer only after the trainer's own timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import OverloadedError

# Whole seconds (RFC 9110 delta-seconds), used until a drain rate is measured (see drain_rate.py).
RETRY_AFTER_S = 1


class Admission:
    def __init__(self, max_items: int, retry_after_s: Callable[[int], int] = lambda items_ahead: RETRY_AFTER_S) -> None:
        self.max_items = max_items
        self.retry_after_s = retry_after_s  # items that must be answered first -> seconds
        self.held = 0
        self.peak = 0  # high-water mark, so tests and operators can see the bound held
        self._lock = threading.Lock()

    @contextmanager
    def admit(self, count: int) -> Iterator[None]:
        """Hold ``count`` items for the duration of the block, or raise OverloadedError at once."""
        with self._lock:
            if self.held + count > self.max_items:
                retry_after = self.retry_after_s(self.held + count - self.max_items)
                raise OverloadedError(
                    f"the server is at capacity ({self.held} of {self.max_items} items admitted); "
                    f"retry after {retry_after} s",
                    retry_after_s=retry_after,
                )
            self.held += count
            self.peak = max(self.peak, self.held)
        try:
            yield
        finally:
            with self._lock:
                self.held -= count
