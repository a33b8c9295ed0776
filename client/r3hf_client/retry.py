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
    """The retry state of one HTTP call: how many tries were made and how much of the call's deadline is left.

    ``deadline_at`` (a ``clock()`` time) lets every chunk of one call share the call's deadline.
    """

    def __init__(self, policy: RetryPolicy, deadline_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic, *, deadline_at: float | None = None):
        self.policy = policy
        self.clock = clock
        self.deadline_at = deadline_at if deadline_s is None else clock() + deadline_s
        self.tries = 0

    def time_left(self) -> float | None:
        return None if self.deadline_at is None else self.deadline_at - self.clock()

    def timeout(self, per_attempt_s: float) -> float:
        """The per-attempt timeout, shortened so no attempt runs past the deadline; counts the attempt."""
        self.tries += 1
        left = self.time_left()
        if left is None:
            return per_attempt_s
        if left <= 0:
            raise DeadlineExceededError("the call's deadline ran out before the request could be sent")
        return min(per_attempt_s, left)

    def backoff(self, retry_after: float | None = None) -> float:
        """How long the replica that just failed is left alone (exponential, jittered, ``Retry-After`` a floor)."""
        return self.policy.delay(max(self.tries, 1), retry_after)

    def check(self, error: Exception) -> None:
        """Raise ``error`` when it is not worth another try or this call's attempts are spent."""
        if not is_retryable(error) or self.tries >= self.policy.max_attempts:
            raise error
