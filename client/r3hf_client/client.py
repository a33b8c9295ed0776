"""The synchronous client. Chunks of a large job go out on a small thread pool (httpx.Client is thread-safe)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any

import httpx

from ._base import Chunk, ClientCore, ItemLike, ResponseT, connection_error, settle
from .errors import R3HFError
from .progress import make_progress
from .projection import PolicyJob, PolicyTokenRewards
from .routing import Dispatch, Probe, ReplicaStats, Wait
from .wire import InfoResponse, ScoreResponse, TokenRewardsResponse


class RewardClient:
    """Calls ``/token_rewards``, ``/score``, ``/info`` and ``/ready`` on one server or several replicas.

    - ``base_url``: one URL or a list of replicas. Each request goes to the healthy replica with the fewest requests
      in flight from this client; a retry goes to another replica than the one that failed; a replica that refuses
      or resets connections or answers 503 is skipped for a cooldown and probed on ``/ready`` before reuse
      (``r3hf_client.routing``).
    - ``timeout``: seconds per attempt; ``deadline``: seconds for a whole call, every chunk and retry included
      (None = no limit). While every replica is down the call waits for one, up to the deadline.
    - ``retry``: a ``RetryPolicy``; connection failures, 429, 502, 503 and 504 are retried with exponential backoff,
      never sooner than the server's ``Retry-After`` (the backoff is skipped when another replica can take it).
    - ``health``: a ``HealthPolicy`` (cooldown of a failed replica: 0.5 s doubling to 10 s; /ready probe timeout).
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

    def replica_stats(self) -> dict[str, ReplicaStats]:
        """Each replica as this client sees it: healthy, requests in flight, answered, failed, last failure."""
        return self._core.replica_stats()

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
        url, payload = self._request("GET", "/info", None, self._core.call_deadline())
        return self._core.read_info(url, payload)

    def ready(self) -> bool:
        """True when some replica answers /ready with 200 (each asked once, in order; no retries)."""
        for url in self._core.urls:
            try:
                if self._http.get(url + "/ready", timeout=self._core.timeout).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
        return False

    def _run_chunks(
        self, items: Iterable[ItemLike], body_of: Callable[[Chunk], dict], path: str,
        read: Callable[[str, dict], ResponseT],
    ) -> ResponseT:
        chunks = self._core.chunks(items)
        progress = make_progress(self._core.progress, sum(len(c.items) for c in chunks))
        deadline_at, abandoned = self._core.call_deadline(), threading.Event()

        def send(chunk: Chunk) -> ResponseT:
            return read(*self._request("POST", path, body_of(chunk), deadline_at, abandoned))

        try:
            if len(chunks) == 1:
                parts = [(chunks[0], send(chunks[0]))]
                progress.advance(len(chunks[0].items))
            else:
                parts = self._send_concurrently(chunks, send, progress.advance, abandoned)
        finally:
            progress.close()
        return self._core.merge(parts)

    def _send_concurrently(self, chunks: list[Chunk], send: Callable, advance: Callable[[int], None],
                           abandoned: threading.Event) -> list:
        workers = min(self._core.max_concurrency, len(chunks))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="r3hf-client") as pool:
            pending: dict[Future, Chunk] = {pool.submit(send, chunk): chunk for chunk in chunks}
            done_parts: dict[int, tuple[Chunk, Any]] = {}
            while pending:
                done, _ = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    chunk = pending.pop(future)
                    if future.exception() is not None:
                        abandoned.set()  # the others stop retrying; requests already in flight still finish
                        for other in pending:
                            other.cancel()
                        raise future.exception()  # type: ignore[misc]
                    done_parts[chunk.start] = (chunk, future.result())
                    advance(len(chunk.items))
        return [done_parts[start] for start in sorted(done_parts)]

    def _request(self, method: str, path: str, body: dict | None, deadline_at: float | None,
                 abandoned: threading.Event | None = None) -> tuple[str, Any]:
        """Send until a replica answers: wait, probe a recovering replica or send, as the routing decides."""
        dispatch, abandoned = self._core.dispatch(deadline_at), abandoned or threading.Event()
        while True:
            if abandoned.is_set():
                raise R3HFError("abandoned: another chunk of this call failed")
            step = dispatch.next_step()
            if isinstance(step, Wait):
                abandoned.wait(step.seconds)
            elif isinstance(step, Probe):
                self._probe(step)
            else:
                answer = self._attempt(dispatch, step.url, method, path, body)
                if answer is not None:
                    return step.url, answer

    def _attempt(self, dispatch: Dispatch, url: str, method: str, path: str, body: dict | None) -> Any:
        """One request; its JSON answer, or None after a retryable failure (any other failure raises)."""
        timeout = dispatch.timeout(self._core.timeout)
        with self._core.router.outstanding(url):
            try:
                response = self._http.request(method, url + path, json=body, timeout=timeout)
            except httpx.TransportError as exc:
                dispatch.failed(url, connection_error(url, exc))
                return None
        return settle(dispatch, url, response)

    def _probe(self, probe: Probe) -> None:
        ready, failure = False, "probe abandoned"
        try:
            response = self._http.get(probe.url + "/ready", timeout=probe.timeout)
            ready, failure = response.status_code == 200, f"HTTP {response.status_code}"
        except httpx.TransportError as exc:
            failure = f"{type(exc).__name__}: {exc}"
        finally:
            self._core.router.probed(probe.url, ready, failure)
