"""Retry decisions shared by the sync and async clients: exponential backoff, ``Retry-After`` and a total deadline.

No I/O and no sleeping here: ``Attempts.wait_after`` says how long to wait before the next try, or raises.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from .errors import DeadlineExceededError, is_retryable


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry transient failures.

    The n-th retry waits ``backoff_s * 2**(n-1)`` (capped at ``max_backoff_s``) plus up to ``jitter`` of that at
    random, so workers that failed together do not return together; a ``Retry-After`` the server sent is a floor.
    """

    max_attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (1 = no retries)")

    def delay(self, retry: int, retry_after: float | None = None, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        backoff = min(self.backoff_s * 2 ** (retry - 1), self.max_backoff_s)
        backoff += backoff * self.jitter * rng()
        return max(backoff, retry_after or 0.0)


NO_RETRIES = RetryPolicy(max_attempts=1)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds (fractions accepted) or an HTTP date; None if absent/bad."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(when - (time.time() if now is None else now), 0.0)


class Attempts:
    """The retry state of one HTTP call: how many tries were made and how much of the deadline is left."""

    def __init__(self, policy: RetryPolicy, deadline_s: float | None, clock: Callable[[], float] = time.monotonic):
        self.policy = policy
        self.clock = clock
        self.deadline_at = None if deadline_s is None else clock() + deadline_s
        self.tries = 0

    def timeout(self, per_attempt_s: float) -> float:
        """The per-attempt timeout, shortened so no attempt runs past the deadline."""
        self.tries += 1
        if self.deadline_at is None:
            return per_attempt_s
        left = self.deadline_at - self.clock()
        if left <= 0:
            raise DeadlineExceededError("the call's deadline ran out before the request could be sent")
        return min(per_attempt_s, left)

    def wait_after(self, error: Exception, retry_after: float | None = None) -> float:
        """Seconds to wait before trying again after ``error``; raises it (or a deadline error) when giving up."""
        if not is_retryable(error) or self.tries >= self.policy.max_attempts:
            raise error
        delay = self.policy.delay(self.tries, retry_after)
        if self.deadline_at is not None and self.clock() + delay >= self.deadline_at:
            raise DeadlineExceededError(
                f"gave up after {self.tries} attempt(s): the next retry (in {delay:.2f}s) would pass the deadline; "
                f"last failure: {error}"
            ) from error
        return delay
