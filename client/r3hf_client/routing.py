"""Which replica gets the next request: least-loaded among the healthy ones, with failover and cooldowns.

No I/O and no sleeping here (the sync and async clients share it): ``ReplicaRouter`` keeps each replica's health and
this client's outstanding requests; ``Dispatch`` walks one request through it and says what to do next — send to a
replica, probe a recovering replica's ``/ready``, or wait — and raises when the request must give up.

- Least loaded: a request goes to the healthy replica with the fewest requests in flight from this client (ties in
  turn), which approximates least-outstanding-requests balancing: a slow replica holds its requests longer and so is
  offered fewer.
- Failover: a retry goes to another replica than the one that just failed whenever one is available.
- Health: a replica that refuses or resets connections (any answerless failure) or answers 503 is down for a
  cooldown that doubles with each consecutive failure (``HealthPolicy``), then probed on ``/ready``; only a 200
  puts it back. A 429/502/504 leaves it up but skipped until its backoff (or ``Retry-After``) has passed.
- All down: the request waits for the first cooldown to end and probes again, until the call's deadline; then it
  raises ``AllReplicasDownError`` naming each replica's last failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Union

from .errors import AllReplicasDownError, ConnectionFailedError, DeadlineExceededError, R3HFError, is_retryable
from .retry import Attempts


@dataclass(frozen=True)
class HealthPolicy:
    """How long a failed replica is left alone: ``cooldown_s * 2**(n-1)`` after its n-th failure in a row, capped at
    ``max_cooldown_s``; then one ``/ready`` probe (``probe_timeout_s``) decides whether it takes requests again."""

    cooldown_s: float = 0.5
    max_cooldown_s: float = 10.0
    probe_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.cooldown_s <= self.max_cooldown_s or self.probe_timeout_s <= 0:
            raise ValueError("need 0 < cooldown_s <= max_cooldown_s and probe_timeout_s > 0")

    def cooldown(self, failures_in_a_row: int) -> float:
        return min(self.cooldown_s * 2 ** (max(failures_in_a_row, 1) - 1), self.max_cooldown_s)


@dataclass
class ReplicaStats:
    """One replica as this client sees it (``RewardClient.replica_stats()``)."""

    url: str
    healthy: bool = True  # False: marked down, waiting for its cooldown and a /ready probe
    outstanding: int = 0  # requests in flight from this client
    answered: int = 0  # requests it answered successfully
    failed: int = 0  # requests that failed on it (any retryable failure)
    failures_in_a_row: int = 0  # drives the cooldown; reset by a successful request
    last_failure: str = ""
    retry_at: float = 0.0  # monotonic time before which it gets no request (down: its probe; up: a backoff)

    def describe(self, now: float) -> str:
        state = "up" if self.healthy else f"down (next probe in {max(self.retry_at - now, 0):.1f}s)"
        return f"{self.url}: {state}; last failure: {self.last_failure or 'none'}"


def marks_down(error: Exception) -> bool:
    """No answer at all, or 503 (not ready / draining, or a proxy with no healthy upstream)."""
    return isinstance(error, ConnectionFailedError) or getattr(error, "status_code", None) == 503


class ReplicaRouter:
    """Health and load of every replica of one client, shared by all its calls and threads."""

    def __init__(self, urls: Sequence[str], policy: HealthPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy, self.clock = policy or HealthPolicy(), clock
        self._replicas = {url: ReplicaStats(url) for url in urls}
        self._last_chosen = {url: -1 for url in urls}
        self._picks = 0
        self._probing: set[str] = set()
        self._lock = threading.Lock()

    def snapshot(self) -> dict[str, ReplicaStats]:
        with self._lock:
            return {url: ReplicaStats(**vars(state)) for url, state in self._replicas.items()}

    def describe(self) -> str:
        now = self.clock()
        with self._lock:
            return "; ".join(state.describe(now) for state in self._replicas.values())

    def choose(self, avoid: str | None = None) -> Send | Probe | Wait:
        """The next step for a request that last failed on ``avoid`` (None: a fresh request)."""
        now = self.clock()
        with self._lock:
            for state in self._replicas.values():
                if not state.healthy and state.retry_at <= now and state.url not in self._probing:
                    self._probing.add(state.url)
                    return Probe(state.url, self.policy.probe_timeout_s)
            ready = [s for s in self._replicas.values() if s.healthy and s.retry_at <= now]
            others = [s for s in ready if s.url != avoid]
            if others or ready:
                best = min(others or ready, key=lambda s: (s.outstanding, self._last_chosen[s.url]))
                self._picks += 1
                self._last_chosen[best.url] = self._picks
                return Send(best.url)
            waits = [s.retry_at - now for s in self._replicas.values() if s.url not in self._probing]
            all_down = not any(s.healthy for s in self._replicas.values())
            return Wait(max(min(waits, default=0.05), 0.01), all_down)

    @contextmanager
    def outstanding(self, url: str) -> Iterator[None]:
        with self._lock:
            self._replicas[url].outstanding += 1
        try:
            yield
        finally:
            with self._lock:
                self._replicas[url].outstanding -= 1

    def succeeded(self, url: str) -> None:
        with self._lock:
            state = self._replicas[url]
            state.answered += 1
            state.failures_in_a_row = 0

    def failed(self, url: str, error: Exception, backoff_s: float) -> None:
        """Down for a cooldown after an answerless failure or a 503; otherwise skipped for ``backoff_s``."""
        now = self.clock()
        with self._lock:
            state = self._replicas[url]
            state.failed += 1
            state.last_failure = str(error)
            if marks_down(error):
                if state.healthy:  # several requests failing together count as one failure of the replica
                    state.failures_in_a_row += 1
                    state.healthy = False
                state.retry_at = max(state.retry_at, now + self.policy.cooldown(state.failures_in_a_row))
            else:
                state.retry_at = max(state.retry_at, now + backoff_s)

    def probed(self, url: str, ready: bool, failure: str = "") -> None:
        now = self.clock()
        with self._lock:
            self._probing.discard(url)
            state = self._replicas[url]
            if ready:
                state.healthy, state.retry_at = True, now
                return
            state.failures_in_a_row += 1
            state.last_failure = f"/ready probe: {failure}"
            state.retry_at = now + self.policy.cooldown(state.failures_in_a_row)


@dataclass(frozen=True)
class Send:
    url: str


@dataclass(frozen=True)
class Probe:
    url: str
    timeout: float


@dataclass(frozen=True)
class Wait:
    seconds: float
    all_down: bool


Step = Union[Send, Probe, Wait]


class Dispatch:
    """One request's way through the replicas: its attempts, the replica it last failed on, the call's deadline."""

    def __init__(self, router: ReplicaRouter, attempts: Attempts) -> None:
        self.router, self.attempts = router, attempts
        self.last_failed: str | None = None
        self.last_error: R3HFError | None = None

    def next_step(self) -> Step:
        """Send, probe or wait; raises when the deadline has passed (or would pass while waiting on busy replicas)."""
        step = self.router.choose(avoid=self.last_failed)
        left = self.attempts.time_left()
        if isinstance(step, Wait) and left is not None:
            if left <= 0 or (not step.all_down and step.seconds >= left):
                raise self._deadline_error(step.all_down)
            return Wait(min(step.seconds, left), step.all_down)
        if isinstance(step, Probe) and left is not None:
            return Probe(step.url, max(min(step.timeout, left), 0.001))
        return step

    def timeout(self, per_attempt_s: float) -> float:
        return self.attempts.timeout(per_attempt_s)

    def succeeded(self, url: str) -> None:
        self.router.succeeded(url)

    def failed(self, url: str, error: R3HFError, retry_after: float | None = None) -> None:
        """Record the failure; raises it when it is not retryable or the request's attempts are spent."""
        if not is_retryable(error):  # the request's own fault (422, 413, ...): says nothing about the replica
            raise error
        self.router.failed(url, error, self.attempts.backoff(retry_after))
        self.last_failed, self.last_error = url, error
        self.attempts.check(error)

    def _deadline_error(self, all_down: bool) -> DeadlineExceededError:
        if all_down:
            error: DeadlineExceededError = AllReplicasDownError(
                f"every replica was down until the call's deadline passed: {self.router.describe()}"
            )
        else:
            error = DeadlineExceededError(
                f"gave up after {self.attempts.tries} attempt(s): the deadline passes before a replica is free to "
                f"take a retry: {self.router.describe()}"
            )
        error.__cause__ = self.last_error
        return error
