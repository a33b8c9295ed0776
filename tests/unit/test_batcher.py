import asyncio
from dataclasses import replace

import pytest

from r3hf_server.batcher import TokenBudgetBatcher, _Pending, cut_batches, next_fair_batch
from r3hf_server.errors import ServiceError
from r3hf_server.runner.base import EncodedItem, ForwardResult
from r3hf_server.runner.planning import MAX_ALONE_PASSES_PER_BATCH, BatchPolicy, batch_cost


def item(n: int) -> EncodedItem:
    return EncodedItem(input_ids=tuple(range(n)), response_start=0, response_end=n)


def pending(lengths):
    return [_Pending(item(n), future=None) for n in lengths]  # type: ignore[arg-type]


def test_batches_are_sorted_and_fit_the_token_budget():
    batches = cut_batches(pending([5, 50, 7, 48, 6, 49]), max_batch_tokens=100, max_batch_size=8)
    for batch in batches:
        lengths = [len(p.item) for p in batch]
        assert lengths == sorted(lengths) and batch_cost([p.item for p in batch], BatchPolicy()) <= 100
    assert sorted(len(p.item) for b in batches for p in b) == [5, 6, 7, 48, 49, 50]


def test_an_item_over_the_budget_runs_alone_instead_of_being_dropped():
    batches = cut_batches(pending([3, 500, 4]), max_batch_tokens=100, max_batch_size=8)
    assert [[len(p.item) for p in b] for b in batches] == [[3, 4], [500]]


def test_max_batch_size_caps_the_count():
    batches = cut_batches(pending([1] * 10), max_batch_tokens=10_000, max_batch_size=4)
    assert [len(b) for b in batches] == [4, 4, 2]


def run(coro):
    return asyncio.run(coro)


async def with_batcher(run_batch, body, **kwargs):
    batcher = TokenBudgetBatcher(run_batch, max_batch_tokens=64, max_batch_size=8, max_wait_s=0.01, **kwargs)
    await batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.stop()


def test_each_future_gets_its_own_items_scores():
    def scores(batch):
        return [ForwardResult([float(len(i))] * len(i)) for i in batch]

    async def body(batcher):
        futures = [batcher.submit(item(n)) for n in (3, 9, 1, 5)]
        return [f.result.prefix_scores for f in await asyncio.gather(*futures)]

    assert run(with_batcher(scores, body)) == [[3.0] * 3, [9.0] * 9, [1.0], [5.0] * 5]


def test_a_failing_batch_fails_only_its_items_and_the_worker_lives_on():
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("device error with secret details")
        return [ForwardResult([0.0] * len(i)) for i in batch]

    async def body(batcher):
        first = batcher.submit(item(4))
        with pytest.raises(ServiceError) as excinfo:
            await first
        assert "secret" not in excinfo.value.message
        second = await batcher.submit(item(4))
        return batcher.alive, second.result.prefix_scores

    assert run(with_batcher(flaky, body)) == (True, [0.0] * 4)


def test_a_runner_returning_the_wrong_count_fails_loudly():
    async def body(batcher):
        with pytest.raises(ServiceError):
            await batcher.submit(item(2))
        return batcher.alive

    assert run(with_batcher(lambda batch: [], body)) is True


def test_cancelled_items_are_skipped_before_the_forward():
    seen = []

    class Observer:
        skipped = 0

        def batch_done(self, stats):
            pass

        def item_dequeued(self, queue_seconds):
            pass

        def item_skipped(self):
            Observer.skipped += 1

    def record(batch):
        seen.extend(len(i) for i in batch)
        return [ForwardResult([0.0] * len(i)) for i in batch]

    async def body(batcher):
        gone = batcher.submit(item(7))
        gone.cancel()
        kept = batcher.submit(item(3))
        await kept
        return seen

    assert run(with_batcher(record, body, observer=Observer())) == [3]
    assert Observer.skipped == 1


def test_queue_depth_counts_collected_items_until_they_start_and_stop_resolves_them():
    """While one forward is held, stop() must answer all four items (the running one and the three waiting) with
    not_ready before that forward ends: nothing else would ever resolve them."""
    import threading

    from r3hf_server.errors import NotReadyError

    gate = threading.Event()

    def held(batch):
        gate.wait(timeout=10)
        return [ForwardResult([0.0] * len(i)) for i in batch]

    async def body():
        batcher = TokenBudgetBatcher(held, max_batch_tokens=8, max_batch_size=1, max_wait_s=0.05)
        await batcher.start()
        futures = [batcher.submit(item(3)) for _ in range(4)]
        await asyncio.sleep(0.2)  # the first runs (held); the other three wait in the window
        depth = batcher.queue_depth
        stopping = asyncio.ensure_future(batcher.stop())
        await asyncio.sleep(0.2)  # the forward is still held: only stop() can have answered the items
        answered = [f.done() and isinstance(f.exception(), NotReadyError) for f in futures]
        gate.set()
        await stopping
        return depth, answered

    depth, answered = run(body())
    assert depth == 3 and answered == [True] * 4


def test_a_lone_item_does_not_wait_for_company_when_nothing_else_is_coming():
    async def body(batcher):
        started = asyncio.get_running_loop().time()
        await batcher.submit(item(3))
        return asyncio.get_running_loop().time() - started

    batcher_wait = 2.0

    async def main():
        batcher = TokenBudgetBatcher(lambda b: [ForwardResult([0.0] * len(i)) for i in b], max_batch_tokens=64, max_batch_size=8,
                                     max_wait_s=batcher_wait, more_items_coming=lambda: False)
        await batcher.start()
        try:
            return await body(batcher)
        finally:
            await batcher.stop()

    assert run(main()) < batcher_wait / 4


def requests_pending(*sizes, needs_attention=False):
    """Items of several requests, request k owning sizes[k] items of 4 tokens each."""
    return [_Pending(replace(item(4), needs_attention=needs_attention), future=None, request=f"r{k}")  # type: ignore[arg-type]
            for k, count in enumerate(sizes) for _ in range(count)]


def owners(batch):
    return sorted(p.request for p in batch)


def test_with_company_no_request_fills_more_than_half_a_batch():
    batch = next_fair_batch(requests_pending(20, 1), max_batch_tokens=1_000, max_batch_size=8)
    assert owners(batch) == ["r0"] * 4 + ["r1"]


def test_company_from_the_last_batch_keeps_a_lone_request_to_half_a_batch():
    assert len(next_fair_batch(requests_pending(20), max_batch_tokens=1_000, max_batch_size=8)) == 8
    assert len(next_fair_batch(requests_pending(20), max_batch_tokens=1_000, max_batch_size=8, company=True)) == 4


def test_a_batch_holds_a_bounded_number_of_attention_passes():
    items = requests_pending(40, needs_attention=True)
    assert [len(b) for b in cut_batches(items, max_batch_tokens=1_000, max_batch_size=64)] == [
        MAX_ALONE_PASSES_PER_BATCH] * (40 // MAX_ALONE_PASSES_PER_BATCH)
    assert len(next_fair_batch(items, max_batch_tokens=1_000, max_batch_size=64)) == MAX_ALONE_PASSES_PER_BATCH


def test_the_worker_keeps_batches_half_size_for_one_batch_after_one_that_served_two_requests():
    sizes = []

    def record(batch):
        sizes.append(len(batch))
        return [ForwardResult([0.0] * len(i)) for i in batch]

    async def body(batcher):
        futures = [batcher.submit(item(4), request="big") for _ in range(24)] + [batcher.submit(item(4), request="one")]
        await asyncio.gather(*futures)

    run(with_batcher(record, body))
    # 4 of "big" + "one"; then "big" alone but still at half (the last batch had company); then full batches
    assert sizes[:3] == [5, 4, 8], sizes
