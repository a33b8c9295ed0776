"""The asyncio client: the same options and results as ``RewardClient``; chunks run as tasks under a semaphore."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpx

from ._base import Chunk, ClientCore, ItemLike, ResponseT, connection_error, settle
from .progress import make_progress
from .projection import PolicyJob, PolicyTokenRewards
from .routing import Dispatch, Probe, ReplicaStats, Wait
from .wire import InfoResponse, ScoreResponse, TokenRewardsResponse


class AsyncRewardClient:
    """``async`` twin of ``RewardClient`` (same constructor options; see its docstring)."""

    def __init__(self, base_url: str | Sequence[str] = "http://127.0.0.1:8000", *,
                 transport: httpx.AsyncBaseTransport | None = None, **options: Any) -> None:
        self._core = ClientCore(base_url, **options)
        self._http = httpx.AsyncClient(headers=self._core.headers, transport=transport)

    async def __aenter__(self) -> AsyncRewardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def fingerprint(self) -> str | None:
        return self._core.fingerprint

    def replica_stats(self) -> dict[str, ReplicaStats]:
        return self._core.replica_stats()

    async def token_rewards(
        self, items: Iterable[ItemLike], *, redistribution: str | None = None, beta: float | None = None,
        baseline: str | None = None, return_tokens: bool | None = None, truncation: str | None = None,
        encoding_format: str | None = None,
    ) -> TokenRewardsResponse:
        options = dict(redistribution=redistribution, beta=beta, baseline=baseline, return_tokens=return_tokens,
                       truncation=truncation, encoding_format=encoding_format)
        return await self._run_chunks(
            items, lambda chunk: self._core.token_rewards_body(chunk, options), "/token_rewards",
            self._core.read_token_rewards,
        )

    async def score(self, items: Iterable[ItemLike], *, truncation: str | None = None) -> ScoreResponse:
        return await self._run_chunks(
            items, lambda chunk: self._core.score_body(chunk, truncation), "/score", self._core.read_score
        )

    async def token_rewards_for_policy(
        self, prompts: Sequence[str], responses: Sequence[str], *, policy_ids: Sequence[Sequence[int]] | None = None,
        policy_tokenizer: Any = None, policy_spans: Sequence[Sequence[tuple[int, int]]] | None = None,
        **options: Any,
    ) -> list[PolicyTokenRewards]:
        job = PolicyJob.build(prompts, responses, policy_ids, policy_tokenizer, policy_spans)
        return job.project(await self.token_rewards(job.items, return_tokens=True, encoding_format="float", **options))

    async def info(self) -> InfoResponse:
        url, payload = await self._request("GET", "/info", None, self._core.call_deadline())
        return self._core.read_info(url, payload)

    async def ready(self) -> bool:
        for url in self._core.urls:
            try:
                if (await self._http.get(url + "/ready", timeout=self._core.timeout)).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
        return False

    async def _run_chunks(
        self, items: Iterable[ItemLike], body_of: Callable[[Chunk], dict], path: str,
        read: Callable[[str, dict], ResponseT],
    ) -> ResponseT:
        chunks = self._core.chunks(items)
        progress = make_progress(self._core.progress, sum(len(c.items) for c in chunks))
        slots = asyncio.Semaphore(self._core.max_concurrency)
        deadline_at = self._core.call_deadline()

        async def send(chunk: Chunk) -> tuple[Chunk, ResponseT]:
            async with slots:
                response = read(*await self._request("POST", path, body_of(chunk), deadline_at))
            progress.advance(len(chunk.items))
            return chunk, response

        tasks = [asyncio.ensure_future(send(chunk)) for chunk in chunks]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        finally:
            progress.close()
        return self._core.merge(parts)

    async def _request(self, method: str, path: str, body: dict | None, deadline_at: float | None) -> tuple[str, Any]:
        """Send until a replica answers: wait, probe a recovering replica or send, as the routing decides."""
        dispatch = self._core.dispatch(deadline_at)
        while True:
            step = dispatch.next_step()
            if isinstance(step, Wait):
                await asyncio.sleep(step.seconds)
            elif isinstance(step, Probe):
                await self._probe(step)
            else:
                answer = await self._attempt(dispatch, step.url, method, path, body)
                if answer is not None:
                    return step.url, answer

    async def _attempt(self, dispatch: Dispatch, url: str, method: str, path: str, body: dict | None) -> Any:
        """One request; its JSON answer, or None after a retryable failure (any other failure raises)."""
        timeout = dispatch.timeout(self._core.timeout)
        with self._core.router.outstanding(url):
            try:
                response = await self._http.request(method, url + path, json=body, timeout=timeout)
            except httpx.TransportError as exc:
                dispatch.failed(url, connection_error(url, exc))
                return None
        return settle(dispatch, url, response)

    async def _probe(self, probe: Probe) -> None:
        ready, failure = False, "probe abandoned"
        try:
            response = await self._http.get(probe.url + "/ready", timeout=probe.timeout)
            ready, failure = response.status_code == 200, f"HTTP {response.status_code}"
        except httpx.TransportError as exc:
            failure = f"{type(exc).__name__}: {exc}"
        finally:
            self._core.router.probed(probe.url, ready, failure)
