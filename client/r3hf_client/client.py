"""The synchronous client. Chunks of a large job go out on a small thread pool (httpx.Client is thread-safe)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any

import httpx

from ._base import Chunk, ClientCore, ItemLike, ResponseT, api_error, connection_error
from .projection import PolicyJob, PolicyTokenRewards
from .progress import make_progress
from .retry import Attempts, parse_retry_after
from .wire import InfoResponse, ScoreResponse, TokenRewardsResponse


class RewardClient:
    """Calls ``/token_rewards``, ``/score``, ``/info`` and ``/ready`` on one server or several replicas.

    - ``base_url``: one URL or a list; chunks and retries rotate over the list.
    - ``timeout``: seconds per attempt; ``deadline``: seconds for a whole call, retries included (None = no limit).
    - ``retry``: a ``RetryPolicy``; connection failures, 429, 502, 503 and 504 are retried with exponential backoff,
      never sooner than the server's ``Retry-After``.
    - ``chunk_size`` items per request, at most ``max_concurrency`` requests in flight per call.
    - ``fingerprint``: the model fingerprint every answer must carry; with ``pin_fingerprint`` (default) the first
      answer's fingerprint is pinned, so a replica serving another model raises ``FingerprintMismatchError``.
    - ``encoding_format="base64"`` moves per-token arrays as float32 (smaller, float32 precision).
    - ``progress``: True for a progress bar, or a ``callback(done, total)``.
    - ``transport``: an httpx transport, for tests (``httpx.MockTransport``) or custom networking.
    """

    def __init__(self, base_url: str | Sequence[str] = "http://127.0.0.1:8000", *,
                 transport: httpx.BaseTransport | None = None, **options: Any) -> None:
        self._core = ClientCore(base_url, **options)
        self._http = httpx.Client(headers=self._core.headers, transport=transport)

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def fingerprint(self) -> str | None:
        return self._core.fingerprint

    def token_rewards(
        self, items: Iterable[ItemLike], *, redistribution: str | None = None, beta: float | None = None,
        baseline: str | None = None, return_tokens: bool | None = None, truncation: str | None = None,
        encoding_format: str | None = None,
    ) -> TokenRewardsResponse:
        """Sequence scores and per-token rewards; unset options take the server's defaults."""
        options = dict(redistribution=redistribution, beta=beta, baseline=baseline, return_tokens=return_tokens,
                       truncation=truncation, encoding_format=encoding_format)
        return self._run_chunks(
            items, lambda chunk: self._core.token_rewards_body(chunk, options), "/token_rewards",
            self._core.read_token_rewards,
        )

    def score(self, items: Iterable[ItemLike], *, truncation: str | None = None) -> ScoreResponse:
        """Sequence scores only."""
        return self._run_chunks(
            items, lambda chunk: self._core.score_body(chunk, truncation), "/score", self._core.read_score
        )

    def token_rewards_for_policy(
        self, prompts: Sequence[str], responses: Sequence[str], *, policy_ids: Sequence[Sequence[int]] | None = None,
        policy_tokenizer: Any = None, policy_spans: Sequence[Sequence[tuple[int, int]]] | None = None,
        **options: Any,
    ) -> list[PolicyTokenRewards]:
        """Per-token rewards projected onto the policy's tokens (see ``r3hf_client.projection``)."""
        job = PolicyJob.build(prompts, responses, policy_ids, policy_tokenizer, policy_spans)
        return job.project(self.token_rewards(job.items, return_tokens=True, encoding_format="float", **options))

    def info(self) -> InfoResponse:
        url, payload = self._request("GET", "/info")
        return self._core.read_info(url, payload)

    def ready(self) -> bool:
        """True when the next replica in turn answers /ready with 200 (no retries)."""
        try:
            return self._http.get(self._core.next_url() + "/ready", timeout=self._core.timeout).status_code == 200
        except httpx.TransportError:
            return False

    def _run_chunks(
        self, items: Iterable[ItemLike], body_of: Callable[[Chunk], dict], path: str,
        read: Callable[[str, dict], ResponseT],
    ) -> ResponseT:
        chunks = self._core.chunks(items)
        progress = make_progress(self._core.progress, sum(len(c.items) for c in chunks))

        def send(chunk: Chunk) -> ResponseT:
            return read(*self._request("POST", path, body_of(chunk)))

        try:
            if len(chunks) == 1:
                parts = [(chunks[0], send(chunks[0]))]
                progress.advance(len(chunks[0].items))
            else:
                parts = self._send_concurrently(chunks, send, progress.advance)
        finally:
            progress.close()
        return self._core.merge(parts)

    def _send_concurrently(self, chunks: list[Chunk], send: Callable, advance: Callable[[int], None]) -> list:
        workers = min(self._core.max_concurrency, len(chunks))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="r3hf-client") as pool:
            pending: dict[Future, Chunk] = {pool.submit(send, chunk): chunk for chunk in chunks}
            done_parts: dict[int, tuple[Chunk, Any]] = {}
            while pending:
                done, _ = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    chunk = pending.pop(future)
                    if future.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise future.exception()  # type: ignore[misc]
                    done_parts[chunk.start] = (chunk, future.result())
                    advance(len(chunk.items))
        return [done_parts[start] for start in sorted(done_parts)]

    def _request(self, method: str, path: str, body: dict | None = None) -> tuple[str, Any]:
        attempts = Attempts(self._core.retry, self._core.deadline)
        while True:
            url = self._core.next_url()
            try:
                timeout = attempts.timeout(self._core.timeout)
                response = self._http.request(method, url + path, json=body, timeout=timeout)
            except httpx.TransportError as exc:
                delay = attempts.wait_after(connection_error(url, exc))
            else:
                if response.is_success:
                    return url, response.json()
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                delay = attempts.wait_after(api_error(response), retry_after)
            time.sleep(delay)
