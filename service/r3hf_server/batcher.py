"""Queue items from many requests and run them through the runner in token-budget batches on one worker thread."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from .errors import NotReadyError, OutOfMemoryError, ServiceError
from .runner.base import EncodedItem, ForwardResult
from .runner.memory import is_out_of_memory, release_cached_memory
from .runner.planning import BatchPolicy, batch_cost, batching_order

log = logging.getLogger(__name__)

RunBatch = Callable[[Sequence[EncodedItem]], list[ForwardResult]]


class ForwardHung(Exception):
    """A forward ran past --forward-timeout-s."""


@dataclass(frozen=True)
class ScoredItem:
    """What an item's future resolves to: the runner's result for it and where its time went."""

    result: ForwardResult
    queue_seconds: float
    inference_seconds: float


@dataclass(frozen=True)
class BatchStats:
    size: int
    tokens: int  # real tokens
    cost_tokens: int  # token positions the forwards held, padding included (planning.batch_cost)
    inference_seconds: float


class BatchObserver(Protocol):
    """Hooks for metrics; the api layer implements them (the batcher knows nothing of Prometheus)."""

    def batch_done(self, stats: BatchStats) -> None: ...

    def item_dequeued(self, queue_seconds: float) -> None: ...

    def item_skipped(self) -> None: ...

    def batch_split(self, size: int) -> None: ...


class _NoObserver:
    def batch_done(self, stats: BatchStats) -> None:
        pass

    def item_dequeued(self, queue_seconds: float) -> None:
        pass

    def item_skipped(self) -> None:
        pass

    def batch_split(self, size: int) -> None:
        pass


@dataclass
class _Pending:
    item: EncodedItem
    future: asyncio.Future = field(repr=False)
    enqueued_at: float = field(default_factory=time.perf_counter)
    started: bool = False
    request: object = None  # which request the item belongs to: batches take turns between requests

    @property
    def owner(self) -> object:
        """What takes turns: the item's request, or the item itself when it came without one."""
        return self.request if self.request is not None else id(self)


def cut_batches(
    pending: list[_Pending], max_batch_tokens: int, max_batch_size: int, policy: BatchPolicy = BatchPolicy()
) -> list[list[_Pending]]:
    """Sort by length (shared-prompt groups kept together), then cut greedily so each batch's cost fits the budget.

    The cost is what the runner's forward passes will occupy (planning's cost model, padding included); an item
    over the budget runs alone rather than being dropped.
    """
    items = [p.item for p in pending]
    batches: list[list[_Pending]] = []
    current: list[_Pending] = []
    meter = policy.meter()
    for index in batching_order(items, policy):
        item = items[index]
        if meter.full_before(item, max_batch_tokens, max_batch_size):
            batches.append(current)
            current, meter = [], policy.meter()
        current.append(pending[index])
        meter.add(item)
    if current:
        batches.append(current)
    return batches


def next_fair_batch(
    pending: list[_Pending], max_batch_tokens: int, max_batch_size: int, policy: BatchPolicy = BatchPolicy(),
    company: bool = False,
) -> list[_Pending]:
    """The next batch: requests take turns, one item per turn in arrival order, each request's items in batching
    order (by length, shared-prompt groups together), until the budget is full. While several requests wait (or
    ``company``: the last batch served several), none gets more turns than another nor more than half the batch, so
    a 1,024-item request cannot hold a single item back for more than about a batch.
    An item over the budget runs alone rather than being dropped."""
    queues: dict[object, list[_Pending]] = {}
    for p in pending:
        queues.setdefault(p.owner, []).append(p)
    turns = [[group[i] for i in reversed(batching_order([p.item for p in group], policy))] for group in queues.values()]
    # With company, one request may fill at most half the batch: the batch a newcomer rides is short too. Company
    # is sticky for one batch: a client sending items one after another is between two of them when the next batch
    # is cut, and a full batch cut then is what its next item waits behind.
    share_tokens, share_count = (max_batch_tokens // 2, max(1, max_batch_size // 2)) if company or len(turns) > 1 \
        else (max_batch_tokens, max_batch_size)
    taken = {id(queue): [0, 0] for queue in turns}  # tokens, items per request
    batch: list[_Pending] = []
    meter = policy.meter()
    while turns:
        for queue in list(turns):
            candidate, share = queue[-1], taken[id(queue)]
            over_share = share[0] + len(candidate.item) > share_tokens or share[1] >= share_count
            if meter.full_before(candidate.item, max_batch_tokens, max_batch_size) or (batch and over_share):
                turns.remove(queue)  # done for this batch; the others may still have smaller items
                continue
            batch.append(queue.pop())
            meter.add(candidate.item)
            share[0], share[1] = share[0] + len(candidate.item), share[1] + 1
            if not queue:
                turns.remove(queue)
    return batch


class TokenBudgetBatcher:
    def __init__(
        self, run_batch: RunBatch, *, max_batch_tokens: int, max_batch_size: int, max_wait_s: float,
        observer: BatchObserver | None = None, policy: BatchPolicy = BatchPolicy(),
        out_of_memory: Callable[[BaseException], bool] = is_out_of_memory,
        more_items_coming: Callable[[], bool] = lambda: True, forward_timeout_s: float | None = None,
    ) -> None:
        self._run_batch = run_batch
        self.forward_timeout_s = forward_timeout_s  # the watchdog: a forward running longer ends the worker
        self.hung = False
        self._is_out_of_memory = out_of_memory
        self.policy = policy
        self.observer: BatchObserver = observer or _NoObserver()
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        # The engine's signal: with nothing on its way (a lone client), waiting max_wait only adds latency.
        self._more_items_coming = more_items_coming
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="r3hf-forward")
        self._task: asyncio.Task | None = None
        self._window: list[_Pending] = []  # taken off the queue, cut into batches, not all run yet

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def queue_depth(self) -> int:
        """Items waiting for a forward: still queued, or in the current window but not started."""
        return self._queue.qsize() + sum(1 for p in self._window if not p.started and not p.future.done())

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="r3hf-batcher")
        self._task.add_done_callback(self._worker_ended)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        # the cancelled loop will never deliver a running forward's results: resolve those items too
        self.fail_waiting(NotReadyError("the server is shutting down"), started_too=True)
        # a running forward is waited for off the event loop (other requests still get their 503 meanwhile);
        # a hung forward's thread never returns
        await asyncio.to_thread(self._executor.shutdown, wait=not self.hung)

    def fail_waiting(self, error: ServiceError, *, started_too: bool = False) -> None:
        """Resolve every collected or queued item with ``error``; items already in a forward only if ``started_too``
        (otherwise that forward finishes and delivers them)."""
        waiting = self._window + [self._queue.get_nowait() for _ in range(self._queue.qsize())]
        for p in waiting:
            if started_too or not p.started:
                _resolve_error(p.future, error)

    def _worker_ended(self, task: asyncio.Task) -> None:
        """Supervision: a worker that died must not leave futures hanging, and must not look alive (/health)."""
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, ForwardHung):  # already logged; every waiting item is told to go elsewhere (503)
            self.fail_waiting(NotReadyError(str(exc)))
            return
        log.critical("the batch worker died; /health answers 503 from now on", exc_info=exc)
        for p in self._window:
            _resolve_error(p.future, ServiceError("the batch worker stopped; details are in the server log"))
        self.fail_waiting(NotReadyError("the batch worker stopped; the server needs a restart"))

    def submit(self, item: EncodedItem, request: object = None) -> asyncio.Future:
        if not self.alive:
            raise NotReadyError("the batch worker is not running")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(item, future, request=request))
        return future

    async def _loop(self) -> None:
        """One batch at a time, cut afresh from everything waiting: an item that arrives while a large request is
        being served joins the very next batch instead of waiting for the whole of that request."""
        company = False
        while True:
            window = await self._collect(self._window)
            self._window = [p for p in window if not p.future.done()]  # skip items whose request was cancelled
            for _ in range(len(window) - len(self._window)):
                self.observer.item_skipped()
            if self._window:
                batch = next_fair_batch(self._window, self.max_batch_tokens, self.max_batch_size, self.policy,
                                        company=company)
                company = len({p.owner for p in batch}) > 1
                await self._run(batch)
                self._window = [p for p in self._window if not p.started]

    async def _collect(self, carried: list[_Pending]) -> list[_Pending]:
        """Wait for one item, then up to max_wait for more, until a full budget's worth (at the runner's cost) is
        queued; everything already waiting joins too, so sorting sees a whole window. Items carried over from the
        last window need no waiting: the new arrivals join them at once."""
        if carried:
            return carried + [self._queue.get_nowait() for _ in range(self._queue.qsize())]
        pending = [await self._queue.get()]
        meter = self.policy.meter()
        meter.add(pending[0].item)
        deadline = time.monotonic() + self.max_wait_s
        while meter.cost < self.max_batch_tokens and meter.count < self.max_batch_size:
            if self._queue.empty():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._more_items_coming():
                    break
                try:
                    entry = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            else:
                entry = self._queue.get_nowait()
            pending.append(entry)
            meter.add(entry.item)
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        return pending

    async def _run(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        for p in batch:
            p.started = True
            self.observer.item_dequeued(started - p.enqueued_at)
        await self._forward(batch, started)

    async def _forward(self, batch: list[_Pending], started: float) -> None:
        """One forward for ``batch``; out of memory → halves, retried down to single items; any other failure
        fails this batch's items only and the worker lives on."""
        items = [p.item for p in batch]
        loop = asyncio.get_running_loop()
        forward_started = time.perf_counter()
        try:
            results = await self._watched(loop.run_in_executor(self._executor, self._run_batch, items), len(items))
            if len(results) != len(items):
                raise RuntimeError(f"runner returned {len(results)} results for a batch of {len(items)} items")
        except ForwardHung as hung:
            for p in batch:
                _resolve_error(p.future, NotReadyError(str(hung)))
            raise  # ends the worker: supervision answers the rest with 503 and /health turns 503
        except Exception as exc:
            if self._is_out_of_memory(exc):
                await self._after_out_of_memory(batch, started, exc)
                return
            log.exception("forward failed for a batch of %d items", len(items))
            for p in batch:
                _resolve_error(p.future, exc)
            return
        self._deliver(batch, results, started, forward_started)

    async def _watched(self, forward: asyncio.Future, size: int) -> list:
        """``forward``'s results, or ForwardHung past --forward-timeout-s (the thread cannot be interrupted, so the
        worker stops for good and the orchestrator restarts the pod on /health's 503)."""
        if self.forward_timeout_s is None:
            return await forward
        try:
            return await asyncio.wait_for(forward, self.forward_timeout_s)
        except asyncio.TimeoutError:
            self.hung = True
            log.critical("a forward of %d items ran past --forward-timeout-s (%g s); the device looks hung, /health "
                         "answers 503 from now on", size, self.forward_timeout_s)
            raise ForwardHung(f"the model did not finish a batch within {self.forward_timeout_s:g} s "
                              "(--forward-timeout-s); the server needs a restart, retry on another replica") from None

    async def _after_out_of_memory(self, batch: list[_Pending], started: float, exc: Exception) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, release_cached_memory)
        if len(batch) == 1:
            log.error("out of memory on a single item of %d tokens", len(batch[0].item), exc_info=exc)
            _resolve_error(batch[0].future, OutOfMemoryError(
                f"an item of {len(batch[0].item)} tokens did not fit in device memory even alone; "
                "lower --max-length or send shorter items"
            ))
            return
        log.warning(
            "out of memory on a batch of %d items (%d tokens with padding); retrying it in halves. If this repeats, "
            "lower --max-batch-tokens", len(batch), batch_cost([p.item for p in batch], self.policy),
        )
        self.observer.batch_split(len(batch))
        half = len(batch) // 2  # the batch is sorted by length: the halves hold the shorter and the longer items
        for part in (batch[:half], batch[half:]):
            live = [p for p in part if not p.future.done()]
            if live:
                await self._forward(live, started)

    def _deliver(
        self, batch: list[_Pending], results: list[ForwardResult], started: float, forward_started: float
    ) -> None:
        """``started``: when the items left the queue; ``forward_started``: this forward (later, after a split)."""
        now = time.perf_counter()
        items = [p.item for p in batch]
        stats = BatchStats(len(batch), sum(map(len, items)), batch_cost(items, self.policy), now - forward_started)
        self.observer.batch_done(stats)
        for p, result in zip(batch, results):
            if not p.future.done():
                p.future.set_result(ScoredItem(result, started - p.enqueued_at, now - started))


def _resolve_error(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc if isinstance(exc, ServiceError) else _internal(exc))


def _internal(exc: BaseException) -> ServiceError:
    error = ServiceError("the model failed on this batch; details are in the server log")
    error.__cause__ = exc
    return error
