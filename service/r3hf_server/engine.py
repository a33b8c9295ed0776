"""The api's only door to the model: admission, per-item futures, and the serving state the api reports.

``RewardEngine.open`` builds the runner (unless one is given), warms it up, starts the batcher and returns the engine;
the api then needs nothing below this module. The engine encodes a request's items, submits them to the batcher and
redistributes the scores; it also owns the signals the api reads (readiness, liveness, queue depth) and the one the
batcher reads (whether more items are on their way).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from .admission import Admission
from .batcher import BatchObserver, BatchStats, ScoredItem, TokenBudgetBatcher
from .drain_rate import DrainRate, MeteredObserver
from .errors import InvalidInputError, NonFiniteOutputError, RequestTimeoutError, ServiceError
from .limits import check_request, default_max_item_chars
from .redistribution import ItemScores, RedistributionOptions, all_finite, sequence_scores, token_rewards
from .runner.base import (
    ChatInput, EncodedItem, ForwardResult, IdsInput, ItemInput, ModelInfo, Runner, TextInput, TruncationMode,
)
from .settings import Settings
from .warmup import warm_up

# The api's vocabulary, re-exported so that nothing under api/ imports the batcher or the runner.
__all__ = [
    "BatchObserver", "BatchStats", "ChatInput", "EncodedItem", "ForwardResult", "IdsInput", "ItemInput", "ItemOutcome",
    "ModelInfo", "RequestTimings", "RewardEngine", "Runner", "TextInput", "TruncationMode", "build_runner",
]


def build_runner(settings: Settings) -> Runner:
    """The runner ``--runner`` names. A runner sees only the model-loading settings: no API keys, no HTTP limits."""
    if settings.runner == "fake":
        from .runner.fake import FakeRunner

        return FakeRunner()
    from .runner.hf import build_hf_runner  # torch is imported only when a real model is served

    return build_hf_runner(settings.model_loading())


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
        self, runner: Runner, settings: Settings, observer: BatchObserver | None = None, tokenize_threads: int = 2
    ) -> None:
        self.runner = runner
        self.max_items_per_request = settings.max_items_per_request
        self.drain_rate = DrainRate()  # measured answers per second: the 429s' Retry-After
        self.admission = Admission(settings.max_queue_items or settings.max_items_per_request,
                                   retry_after_s=self.drain_rate.retry_after_s)
        self.request_timeout_s = settings.request_timeout_s
        self.max_item_chars = settings.max_item_chars or default_max_item_chars(runner.info.max_length)
        self._tokenize_pool = ThreadPoolExecutor(max_workers=tokenize_threads, thread_name_prefix="r3hf-tokenize")
        self._batcher = TokenBudgetBatcher(
            runner.forward, max_batch_tokens=settings.max_batch_tokens, max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_wait_ms / 1000.0, observer=MeteredObserver(observer, self.drain_rate),
            policy=runner.batch_policy,
            more_items_coming=self._more_items_coming, forward_timeout_s=settings.forward_timeout_s,
        )
        self._requests_in_flight = 0  # announced by the api (body still being read, or being scored)
        self._requests_awaiting_scores = 0  # requests whose items are all with the batcher
        self._stopping = False

    @classmethod
    async def open(
        cls, settings: Settings, runner: Runner | None = None, observer: BatchObserver | None = None
    ) -> RewardEngine:
        """Load the model (unless ``runner`` is given), warm it up at the largest batch allowed, start the worker."""
        model = runner or await asyncio.to_thread(build_runner, settings)
        await asyncio.to_thread(warm_up, model, settings.max_batch_tokens, settings.max_batch_size)
        engine = cls(model, settings, observer)
        await engine._batcher.start()
        return engine

    async def stop(self) -> None:
        """Stop taking work; items still queued or in a forward are answered 503 (``not_ready``)."""
        self._stopping = True
        await self._batcher.stop()
        self._tokenize_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def info(self) -> ModelInfo:
        return self.runner.info

    @property
    def alive(self) -> bool:
        """The batch worker runs (false after it died: /health answers 503)."""
        return self._batcher.alive

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def ready(self) -> bool:
        """Worker alive and not shutting down: requests will be answered."""
        return self.alive and not self._stopping

    def retry_after_s(self) -> int:
        """When a refused request should come back: the items held now, answered at the measured rate."""
        return self.drain_rate.retry_after_s(self.admission.held)

    @property
    def queue_depth(self) -> int:
        """Items waiting for a forward."""
        return self._batcher.queue_depth

    def fail_waiting(self, error: ServiceError) -> None:
        """Answer every item not yet in a forward with ``error`` (a drain that ran out of time)."""
        self._batcher.fail_waiting(error)

    def request_arrived(self) -> None:
        """The api accepted a request that may bring items (its body may still be streaming in)."""
        self._requests_in_flight += 1

    def request_done(self) -> None:
        self._requests_in_flight -= 1

    def _more_items_coming(self) -> bool:
        """Waiting for company helps only if some accepted request has not handed its items over yet (a GRPO burst
        still being parsed); a lone client would just pay the batcher's wait."""
        return self._requests_in_flight > self._requests_awaiting_scores

    async def token_rewards(
        self, inputs: Sequence[ItemInput], options: RedistributionOptions, truncation: TruncationMode,
        with_tokens: bool, timings: RequestTimings | None = None,
    ) -> list[ItemOutcome]:
        scored = await self._forward(
            inputs, truncation, with_tokens, timings or RequestTimings(), with_attention=options.needs_attention
        )
        return [
            ItemOutcome(item, token_rewards(
                result.prefix_scores, item.response_start, item.response_end, options, result.final_attention
            ))
            for item, result in scored
        ]

    async def score(
        self, inputs: Sequence[ItemInput], truncation: TruncationMode, timings: RequestTimings | None = None
    ) -> list[ItemOutcome]:
        outcomes = []
        for item, result in await self._forward(inputs, truncation, False, timings or RequestTimings()):
            score, prompt_score = sequence_scores(result.prefix_scores, item.response_start, item.response_end)
            outcomes.append(ItemOutcome(item, ItemScores(score, prompt_score, [])))
        return outcomes

    async def _forward(
        self, inputs: Sequence[ItemInput], truncation: TruncationMode, with_tokens: bool, timings: RequestTimings,
        with_attention: bool = False,
    ) -> list[tuple[EncodedItem, ForwardResult]]:
        """Free checks first, then admission (429), then the work under the request's deadline (504)."""
        # On a tokenizer thread: scanning 60 MiB of text for lone surrogates would hold the event loop for a second.
        await asyncio.get_running_loop().run_in_executor(
            self._tokenize_pool, check_request, inputs, self.max_items_per_request, self.max_item_chars
        )
        with self.admission.admit(len(inputs)):
            work = self._admitted_forward(inputs, truncation, with_tokens, timings, with_attention)
            try:  # on timeout the work is cancelled: its queued items are skipped before the forward
                return await asyncio.wait_for(work, self.request_timeout_s)
            except asyncio.TimeoutError:
                raise RequestTimeoutError(
                    f"the request was not answered within {self.request_timeout_s:g} s (--request-timeout-s); "
                    "the server is overloaded or the request is too large: retry later or split it"
                ) from None

    async def _admitted_forward(
        self, inputs: Sequence[ItemInput], truncation: TruncationMode, with_tokens: bool, timings: RequestTimings,
        with_attention: bool,
    ) -> list[tuple[EncodedItem, ForwardResult]]:
        started = time.perf_counter()
        encoded = await self._encode_in_slices(inputs, truncation, with_tokens)
        timings.tokenize_seconds = time.perf_counter() - started
        if with_attention:
            encoded = [replace(item, needs_attention=True) for item in encoded]
        to_run = [item for item in encoded if len(item) > 0]  # an empty prompt and response reads no token
        request = object()  # the batcher takes turns between requests
        futures = [self._batcher.submit(item, request) for item in to_run]
        self._requests_awaiting_scores += 1
        try:
            done: list[ScoredItem] = await asyncio.gather(*futures)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            self._requests_awaiting_scores -= 1
        for item_scores in done:
            timings.add(item_scores)
        results = iter(d.result for d in done)
        scored = [(item, next(results) if len(item) > 0 else ForwardResult([])) for item in encoded]
        for index, (_, result) in enumerate(scored):
            if not all_finite(result.prefix_scores):
                raise NonFiniteOutputError(f"item {index}: the model produced a non-finite score (NaN or inf)")
        return scored

    async def _encode_in_slices(
        self, inputs: Sequence[ItemInput], truncation: TruncationMode, with_tokens: bool
    ) -> list[EncodedItem]:
        """Tokenize a slice of items at a time: a request that is cancelled (client gone, deadline passed) stops
        within one item, and other requests' slices get the tokenizer threads in turn instead of queueing behind a
        60 MiB request."""
        loop = asyncio.get_running_loop()
        cancelled = threading.Event()
        encoded: list[EncodedItem] = []
        try:
            for start, stop in _slices(inputs):
                encoded += await loop.run_in_executor(
                    self._tokenize_pool, self._encode_slice, inputs, start, stop, truncation, with_tokens, cancelled
                )
        except BaseException:
            cancelled.set()  # a slice already running in a thread stops at its next item
            raise
        return encoded

    def _encode_slice(
        self, inputs: Sequence[ItemInput], start: int, stop: int, truncation: TruncationMode, with_tokens: bool,
        cancelled: threading.Event,
    ) -> list[EncodedItem]:
        encoded = []
        for index in range(start, stop):
            if cancelled.is_set():
                return []
            try:
                encoded.append(self.runner.encode(inputs[index], truncation, with_tokens))
            except InvalidInputError as exc:
                raise InvalidInputError(f"item {index}: {exc.message}") from exc
        return encoded


# About 10-50 ms of tokenizing: how long another request may wait for a tokenizer thread behind a large one.
_SLICE_CHARS = 1 << 16


def _slices(inputs: Sequence[ItemInput]) -> list[tuple[int, int]]:
    """[start, stop) runs of consecutive items of about _SLICE_CHARS characters (at least one item each)."""
    slices, start, chars = [], 0, 0
    for index, item in enumerate(inputs):
        chars += item.size()
        if chars >= _SLICE_CHARS:
            slices.append((start, index + 1))
            start, chars = index + 1, 0
    if start < len(inputs):
        slices.append((start, len(inputs)))
    return slices
