"""Faults in the forward: out of memory splits the batch, other errors fail only their batch, a dead worker turns
/health red, NaN/inf never reach the client as numbers, and an impossible setting fails the warm-up at start."""

from __future__ import annotations

import asyncio
import math
import threading

import pytest

from r3hf_client.wire import ScoreResponse
from r3hf_server.batcher import TokenBudgetBatcher
from r3hf_server.errors import NotReadyError, OutOfMemoryError, WarmUpError
from r3hf_server.runner.base import EncodedItem, ForwardResult
from r3hf_server.runner.memory import is_out_of_memory
from r3hf_server.warmup import warm_up_shapes

from fault_runner import OOM_MESSAGE, Faults
from faulty_apps import FAIL_CHAR, INF_CHAR, NAN_CHAR, faulty_app, in_process, item, metric, token


def encoded(n: int, marker: int = 5) -> EncodedItem:
    return EncodedItem(input_ids=(marker,) * n, response_start=0, response_end=n)


def test_out_of_memory_is_recognised_by_type_and_by_message():
    torch = pytest.importorskip("torch")
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
                                         "memory: you tried to allocate 1099511627776 bytes."))
    assert is_out_of_memory(RuntimeError(OOM_MESSAGE)) and is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and not is_out_of_memory(ValueError("memory"))


class Splits:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def batch_done(self, stats) -> None:  # type: ignore[no-untyped-def]
        pass

    def item_dequeued(self, queue_seconds: float) -> None:
        pass

    def item_skipped(self) -> None:
        pass

    def batch_split(self, size: int) -> None:
        self.sizes.append(size)


def run_through_batcher(run_batch, items, observer=None):  # type: ignore[no-untyped-def]
    async def body():
        batcher = TokenBudgetBatcher(run_batch, max_batch_tokens=10_000, max_batch_size=64, max_wait_s=0.05,
                                     observer=observer)
        await batcher.start()
        try:
            futures = [batcher.submit(i) for i in items]
            return await asyncio.gather(*futures, return_exceptions=True), batcher.alive
        finally:
            await batcher.stop()

    return asyncio.run(body())


def test_an_out_of_memory_batch_is_split_down_to_what_fits_and_nothing_is_lost():
    attempts: list[int] = []

    def fits_two(batch):  # type: ignore[no-untyped-def]
        attempts.append(len(batch))
        if len(batch) > 2:
            raise RuntimeError(OOM_MESSAGE)
        return [ForwardResult([float(len(i))] * len(i)) for i in batch]

    observer = Splits()
    results, alive = run_through_batcher(fits_two, [encoded(n) for n in range(1, 9)], observer)
    assert [r.result.prefix_scores for r in results] == [[float(n)] * n for n in range(1, 9)]
    assert attempts[0] == 8 and max(attempts[1:]) <= 4 and sum(a for a in attempts if a <= 2) == 8
    assert observer.sizes == [8, 4, 4] and alive


def test_a_single_item_that_does_not_fit_alone_fails_alone():
    def long_items_oom(batch):  # type: ignore[no-untyped-def]
        if any(len(i) > 50 for i in batch):
            raise RuntimeError(OOM_MESSAGE)
        return [ForwardResult([0.0] * len(i)) for i in batch]

    results, alive = run_through_batcher(long_items_oom, [encoded(3), encoded(80), encoded(4)])
    assert isinstance(results[1], OutOfMemoryError) and "80 tokens" in results[1].message
    assert results[0].result.prefix_scores == [0.0] * 3 and results[2].result.prefix_scores == [0.0] * 4 and alive


def test_out_of_memory_over_http_answers_every_item_as_if_nothing_happened():
    app, runner = faulty_app(Faults(oom_above_tokens=40), max_batch_tokens=4096)
    runner.faults.oom_above_tokens = None  # the warm-up runs the full budget; inject only once serving
    items = [item("r" * (1 + i % 9)) for i in range(16)]
    with in_process(app) as client:
        expected = client.post("/score", json={"items": items}).json()["results"]
        runner.faults.oom_above_tokens = 40
        r = client.post("/score", json={"items": items})
        assert r.status_code == 200, r.text
        assert ScoreResponse.model_validate(r.json()).results == ScoreResponse.model_validate(
            {**r.json(), "results": expected}).results
        assert metric(client, "r3hf_oom_splits_total") >= 1


def test_a_failing_forward_fails_only_its_own_request_with_a_generic_500():
    app, runner = faulty_app(Faults(fail_on_token=token(FAIL_CHAR), delay_s=0.05), max_wait_ms=50)
    with in_process(app) as client:
        answers: dict[str, object] = {}

        def post(name: str, body: dict) -> None:
            answers[name] = client.post("/score", json=body)

        threads = [threading.Thread(target=post, args=("bad", {"items": [item("x" + FAIL_CHAR)]})),
                   threading.Thread(target=post, args=("good", {"items": [item("fine")]}))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        bad = answers["bad"]
        assert bad.status_code == 500 and bad.json()["error_type"] == "internal"
        assert "secret" not in bad.text and "device-side" not in bad.text
        assert client.post("/score", json={"items": [item("after")]}).status_code == 200
        assert client.get("/health").status_code == 200


def test_a_dead_worker_fails_waiting_requests_and_health_turns_503():
    app, _ = faulty_app()
    with in_process(app) as client:
        assert client.get("/health").status_code == 200

        def broken_metrics(queue_seconds: float) -> None:  # a bug outside the forward's try kills the loop
            raise RuntimeError("bug in an observer")

        app.state.metrics.item_dequeued = broken_metrics
        r = client.post("/score", json={"items": [item()]})
        assert r.status_code == 500 and r.json()["error_type"] == "internal"  # answered, not hung
        assert client.get("/health").status_code == 503
        assert client.get("/ready").status_code == 503
        later = client.post("/score", json={"items": [item()]})
        assert later.status_code == 503 and later.json()["error_type"] == "not_ready"
        assert "r3hf_model_ready 0.0" in client.get("/metrics").text


@pytest.mark.parametrize("char", [NAN_CHAR, INF_CHAR])
@pytest.mark.parametrize("path", ["/score", "/token_rewards", "/get_reward"])
def test_non_finite_scores_are_a_clear_500_and_never_numbers(char, path):
    faults = Faults(nan_on_token=token(NAN_CHAR), inf_on_token=token(INF_CHAR))
    app, _ = faulty_app(faults)
    bad = {"query": ["p ok" + char], "prompts": ["p"]} if path == "/get_reward" else {"items": [item("ok" + char)]}
    with in_process(app) as client:
        r = client.post(path, json=bad)
        assert r.status_code == 500, r.text
        assert r.json()["error_type"] == "non_finite_output" and "non-finite" in r.json()["error"]
        assert "NaN" not in r.text.replace("(NaN or inf)", "") and "Infinity" not in r.text
        ok = client.post("/score", json={"items": [item("ok")]}).json()["results"][0]
        assert math.isfinite(ok["score"])


def test_warm_up_covers_the_longest_and_the_widest_batch():
    assert warm_up_shapes(max_length=512, max_batch_tokens=16384, max_batch_size=64) == [(32, 512), (64, 256)]
    assert warm_up_shapes(max_length=4096, max_batch_tokens=2048, max_batch_size=8) == [(1, 4096), (8, 256)]


def test_an_impossible_batch_setting_fails_at_start_naming_the_knob():
    app, _ = faulty_app(Faults(oom_above_tokens=1000), max_batch_tokens=4096)
    with pytest.raises(WarmUpError, match="lower --max-batch-tokens"):
        with in_process(app):
            pass
    app, _ = faulty_app(Faults(oom_above_tokens=1000), max_batch_tokens=1000)
    with in_process(app) as client:
        assert client.get("/ready").status_code == 200


def test_stop_answers_items_whose_forward_is_still_running():
    gate = threading.Event()

    def held(batch):  # type: ignore[no-untyped-def]
        gate.wait(5)
        return [ForwardResult([0.0] * len(i)) for i in batch]

    async def body():  # type: ignore[no-untyped-def]
        batcher = TokenBudgetBatcher(held, max_batch_tokens=64, max_batch_size=8, max_wait_s=0)
        await batcher.start()
        running = batcher.submit(encoded(3))
        await asyncio.sleep(0.1)  # in the forward now
        stopping = asyncio.ensure_future(batcher.stop())
        await asyncio.sleep(0.1)
        answered = running.done()
        gate.set()
        await stopping
        return answered, running

    answered, running = asyncio.run(body())
    assert answered and isinstance(running.exception(), NotReadyError)
