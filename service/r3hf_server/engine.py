"""Admission and per-item futures: encode a request's items, submit them to the batcher, redistribute the scores."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from .batcher import ScoredItem, TokenBudgetBatcher
from .admission import Admission
from .errors import InvalidInputError, NonFiniteOutputError, RequestTimeoutError
from .limits import check_request, default_max_item_chars
from .redistribution import ItemScores, RedistributionOptions, all_finite, sequence_scores, token_rewards
from .runner.base import EncodedItem, ItemInput, ModelInfo, Runner, TruncationMode


@dataclass(frozen=True)
class ItemOutcome:
    encoded: EncodedItem
    scores: ItemScores


@dataclass
class RequestTimings:
    """Where a request's time went, for timing headers: the slowest item's queue wait and forward."""

    tokenize_seconds: float = 0.0
    queue_seconds: float = 0.0
    inference_seconds: float = 0.0

    def add(self, scored: ScoredItem) -> None:
        self.queue_seconds = max(self.queue_seconds, scored.queue_seconds)
        self.inference_seconds = max(self.inference_seconds, scored.inference_seconds)


class RewardEngine:
    def __init__(
        self, runner: Runner, batcher: TokenBudgetBatcher, *, max_items_per_request: int, tokenize_threads: int = 2,
        max_queue_items: int | None = None, request_timeout_s: float | None = None, max_item_chars: int | None = None,
    ) -> None:
        self.runner = runner
        self.batcher = batcher
        self.max_items_per_request = max_items_per_request
        self.admission = Admission(max_queue_items or max_items_per_request)
        self.request_timeout_s = request_timeout_s
        self.max_item_chars = max_item_chars or default_max_item_chars(runner.info.max_length)
        self._tokenize_pool = ThreadPoolExecutor(max_workers=tokenize_threads, thread_name_prefix="r3hf-tokenize")
        self.requests_awaiting_scores = 0  # requests whose items are all with the batcher

    @property
    def info(self) -> ModelInfo:
        return self.runner.info

    def close(self) -> None:
        self._tokenize_pool.shutdown(wait=False, cancel_futures=True)

    async def token_rewards(
        self, inputs: Sequence[ItemInput], options: RedistributionOptions, truncation: TruncationMode,
        with_tokens: bool, timings: RequestTimings | None = None,
    ) -> list[ItemOutcome]:
        scored = await self._prefix_scores(
            inputs, truncation, with_tokens, timings or RequestTimings(), with_attention=options.needs_attention
        )
        return [
            ItemOutcome(item, token_rewards(
                scores, item.response_start, item.response_end, options, getattr(scores, "final_attention", None)
            ))
            for item, scores in scored
        ]

    async def score(
        self, inputs: Sequence[ItemInput], truncation: TruncationMode, timings: RequestTimings | None = None
    ) -> list[ItemOutcome]:
        outcomes = []
        for item, scores in await self._prefix_scores(inputs, truncation, False, timings or RequestTimings()):
            score, prompt_score = sequence_scores(scores, item.response_start, item.response_end)
            outcomes.append(ItemOutcome(item, ItemScores(score, prompt_score, [])))
        return outcomes

    async def _prefix_scores(
        self, inputs: Sequence[ItemInput], truncation: TruncationMode, with_tokens: bool, timings: RequestTimings,
        with_attention: bool = False,
    ) -> list[tuple[EncodedItem, list[float]]]:
        """Free checks first, then admission (429), then the work under the request's deadline (504)."""
        check_request(inputs, self.max_items_per_request, self.max_item_chars)
        with self.admission.admit(len(inputs)):
            work = self._admitted_prefix_scores(inputs, truncation, with_tokens, timings, with_attention)
            try:  # on timeout the work is cancelled: its queued items are skipped before the forward
                return await asyncio.wait_for(work, self.request_timeout_s)
            except asyncio.TimeoutError:
                raise RequestTimeoutError(
                    f"the request was not answered within {self.request_timeout_s:g} s (--request-timeout-s); "
                    "the server is overloaded or the request is too large: retry later or split it"
                ) from None

    async def _admitted_prefix_scores(
        self, inputs: Sequence[ItemInput], truncation: TruncationMode, with_tokens: bool, timings: RequestTimings,
        with_attention: bool,
    ) -> list[tuple[EncodedItem, list[float]]]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        encoded = await loop.run_in_executor(self._tokenize_pool, self._encode_all, inputs, truncation, with_tokens)
        timings.tokenize_seconds = time.perf_counter() - started
        if with_attention:
            encoded = [replace(item, needs_attention=True) for item in encoded]
        to_run = [item for item in encoded if len(item) > 0]  # an empty prompt and response reads no token
        futures = [self.batcher.submit(item) for item in to_run]
        self.requests_awaiting_scores += 1
        try:
            done: list[ScoredItem] = await asyncio.gather(*futures)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            self.requests_awaiting_scores -= 1
        for item_scores in done:
            timings.add(item_scores)
        results = iter(d.prefix_scores for d in done)
        scored = [(item, next(results) if len(item) > 0 else []) for item in encoded]
        for index, (_, scores) in enumerate(scored):
            if not all_finite(scores):
                raise NonFiniteOutputError(f"item {index}: the model produced a non-finite score (NaN or inf)")
        return scored

    def _encode_all(
        self, inputs: Sequence[ItemInput], truncation: TruncationMode, with_tokens: bool
    ) -> list[EncodedItem]:
        encoded = []
        for index, item in enumerate(inputs):
            try:
                encoded.append(self.runner.encode(item, truncation, with_tokens))
            except InvalidInputError as exc:
                raise InvalidInputError(f"item {index}: {exc.message}") from exc
        return encoded
