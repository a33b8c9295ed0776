"""What ``RewardClient`` and ``AsyncRewardClient`` share: configuration, request bodies, chunk plans, replica
routing (``routing.py``), response decoding, fingerprint pinning and merging. No I/O here: the two clients differ
only in how they send a request and how they wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, Union

import httpx
from pydantic import BaseModel

from .codec import decode_float32_base64
from .errors import APIError, ConnectionFailedError, FingerprintMismatchError, R3HFError, error_from_response
from .progress import ProgressSpec
from .retry import Attempts, RetryPolicy, parse_retry_after
from .routing import Dispatch, HealthPolicy, ReplicaRouter, ReplicaStats
from .wire import InfoResponse, ScoreResponse, TokenRewardsResponse, Usage

ItemLike = Union[Mapping[str, Any], BaseModel]
ResponseT = TypeVar("ResponseT", ScoreResponse, TokenRewardsResponse)

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Chunk:
    """A slice of the caller's items sent as one request; ``start`` re-indexes its results."""

    start: int
    items: list[dict[str, Any]]


class ClientCore:
    """Configuration and pure logic of a client; see ``RewardClient`` for what each option means."""

    def __init__(
        self,
        base_url: str | Sequence[str] = DEFAULT_URL,
        *,
        timeout: float = 180.0,
        deadline: float | None = 600.0,
        retry: RetryPolicy | None = None,
        health: HealthPolicy | None = None,
        chunk_size: int = 256,
        max_concurrency: int = 4,
        fingerprint: str | None = None,
        pin_fingerprint: bool = True,
        encoding_format: str = "float",
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        progress: ProgressSpec = None,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("give at least one base URL")
        if chunk_size < 1 or max_concurrency < 1:
            raise ValueError("chunk_size and max_concurrency must be at least 1")
        self.urls = tuple(url.rstrip("/") for url in urls)
        self.timeout, self.deadline = timeout, deadline
        self.retry = retry or RetryPolicy()
        self.chunk_size, self.max_concurrency = chunk_size, max_concurrency
        self.encoding_format = encoding_format
        self.progress = progress
        self.headers = dict(headers or {})
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self._pinned, self._pin = fingerprint, pin_fingerprint
        self._pin_lock = threading.Lock()
        self.router = ReplicaRouter(self.urls, health)

    @property
    def fingerprint(self) -> str | None:
        """The fingerprint every replica must report (given, or pinned from the first answer)."""
        return self._pinned

    def call_deadline(self) -> float | None:
        """When a call that starts now must be done (``time.monotonic()``); every chunk of the call shares it."""
        return None if self.deadline is None else time.monotonic() + self.deadline

    def dispatch(self, deadline_at: float | None) -> Dispatch:
        """The routing and retry state of one request (one chunk, or one GET)."""
        return Dispatch(self.router, Attempts(self.retry, deadline_at=deadline_at))

    def replica_stats(self) -> dict[str, ReplicaStats]:
        return self.router.snapshot()

    def chunks(self, items: Iterable[ItemLike]) -> list[Chunk]:
        plain = [as_plain_item(item) for item in items]
        if not plain:
            raise ValueError("no items to send: the server requires at least one")
        size = self.chunk_size
        return [Chunk(start, plain[start : start + size]) for start in range(0, len(plain), size)]

    def token_rewards_body(self, chunk: Chunk, options: Mapping[str, Any]) -> dict[str, Any]:
        fields = {key: value for key, value in options.items() if value is not None}
        fields.setdefault("encoding_format", self.encoding_format)
        return {"items": chunk.items, **fields}

    @staticmethod
    def score_body(chunk: Chunk, truncation: str | None) -> dict[str, Any]:
        return {"items": chunk.items, **({"truncation": truncation} if truncation else {})}

    def read_token_rewards(self, url: str, payload: dict[str, Any]) -> TokenRewardsResponse:
        for result in payload.get("results", ()):
            if isinstance(result.get("token_rewards"), str):
                result["token_rewards"] = decode_float32_base64(result["token_rewards"])
        return self._checked(url, TokenRewardsResponse.model_validate(payload))

    def read_score(self, url: str, payload: dict[str, Any]) -> ScoreResponse:
        return self._checked(url, ScoreResponse.model_validate(payload))

    def read_info(self, url: str, payload: dict[str, Any]) -> InfoResponse:
        return self._checked(url, InfoResponse.model_validate(payload))

    def _checked(self, url: str, response: Any) -> Any:
        with self._pin_lock:
            if self._pinned is None and self._pin:
                self._pinned = response.fingerprint
            expected = self._pinned
        if expected is not None and response.fingerprint != expected:
            raise FingerprintMismatchError(
                f"{url} serves model {response.model!r} with fingerprint {response.fingerprint}, but this client is "
                f"pinned to {expected}: a replica runs a different model (or tokenizer, template, dtype)"
            )
        return response

    @staticmethod
    def merge(parts: Sequence[tuple[Chunk, ResponseT]]) -> ResponseT:
        """One response for the whole job: results re-indexed into the caller's order, usage summed.

        Each chunk contributes the one answer that arrived for it (a retry is sent only when no answer came), and
        every item must be in it exactly once: a short or repeated answer raises instead of shifting results.
        """
        for chunk, response in parts:
            if sorted(result.index for result in response.results) != list(range(len(chunk.items))):
                raise R3HFError(
                    f"the answer for items {chunk.start}..{chunk.start + len(chunk.items) - 1} does not hold each of "
                    f"its {len(chunk.items)} items exactly once (got indices "
                    f"{[r.index for r in response.results][:10]}...)"
                )
        first = parts[0][1]
        if len(parts) == 1:
            return first
        results = [
            result.model_copy(update={"index": chunk.start + result.index})
            for chunk, response in parts
            for result in sorted(response.results, key=lambda r: r.index)
        ]
        usage = Usage(
            **{field: sum(getattr(r.usage, field) for _, r in parts) for field in Usage.model_fields}
        )
        return first.model_copy(update={"results": results, "usage": usage})


def as_plain_item(item: ItemLike) -> dict[str, Any]:
    return item.model_dump() if isinstance(item, BaseModel) else dict(item)


def api_error(response: httpx.Response) -> APIError:
    try:
        body = response.json()
    except ValueError:
        body = None
    return error_from_response(response.status_code, body)


def settle(dispatch: Dispatch, url: str, response: httpx.Response) -> Any:
    """A response's JSON answer, or None after a retryable failure recorded on ``dispatch`` (others raise there)."""
    if response.is_success:
        dispatch.succeeded(url)
        return response.json()
    dispatch.failed(url, api_error(response), parse_retry_after(response.headers.get("retry-after")))
    return None


def connection_error(url: str, exc: httpx.TransportError) -> ConnectionFailedError:
    error = ConnectionFailedError(f"no answer from {url}: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
