"""Admission control, limits checked before any compute, and deadlines: under a burst the server answers only 200
or 429 (with Retry-After) and never holds more items than --max-queue-items."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from faulty_apps import faulty_app, in_process, item, metric
from r3hf_client.wire import ScoreResponse
from r3hf_server.settings import Settings

from fault_runner import Faults


def post_all(base_url: str, bodies: list[dict], workers: int, path: str = "/score") -> list[httpx.Response]:
    with httpx.Client(base_url=base_url, timeout=60, limits=httpx.Limits(max_connections=workers)) as client:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda body: client.post(path, json=body), bodies))


def test_a_burst_of_ten_times_capacity_gets_only_200s_and_429s_and_stays_bounded(serve_faulty):
    capacity = 32
    base_url, app, _ = serve_faulty(Faults(delay_s=0.05), max_queue_items=capacity, max_items_per_request=8)
    bodies = [{"items": [item(f"r{i}-{k}") for k in range(4)]} for i in range(80)]  # 320 items = 10 x capacity
    answers = post_all(base_url, bodies, workers=80)
    statuses = {r.status_code for r in answers}
    assert statuses == {200, 429}, statuses
    for r in answers:
        if r.status_code == 429:
            assert r.json()["error_type"] == "overloaded" and int(r.headers["retry-after"]) >= 1
        else:
            assert len(ScoreResponse.model_validate(r.json()).results) == 4
    admission = app.state.engine.admission
    assert admission.peak <= capacity and admission.held == 0


def test_the_default_admits_a_256_item_request_beside_dozens_of_single_items(serve_faulty):
    assert Settings().max_queue_items >= 1024
    base_url, _, _ = serve_faulty(Faults(delay_s=0.01), max_items_per_request=256, max_queue_items=Settings().max_queue_items)
    bodies = [{"items": [item(f"big{k}") for k in range(256)]}] + [{"items": [item(f"s{i}")]} for i in range(48)]
    answers = post_all(base_url, bodies, workers=49)
    assert [r.status_code for r in answers] == [200] * 49


def test_a_request_cap_over_the_queue_is_clamped_to_it_with_a_log_line(caplog):
    with caplog.at_level("WARNING", logger="r3hf_server"):
        settings = Settings(max_queue_items=64)  # the default cap of 4,096 could never be admitted
    assert settings.max_items_per_request == 64
    assert "--max-items-per-request 4096 exceeds --max-queue-items 64; using 64" in caplog.text


def test_a_body_over_the_limit_is_refused_from_its_declared_length():
    app, _ = faulty_app(max_body_bytes=2_000)
    with in_process(app) as client:
        r = client.post("/score", json={"items": [item("x" * 3_000)]})
        assert r.status_code == 413 and r.json()["error_type"] == "too_large"
        assert "--max-body-bytes" in r.json()["error"]
        assert client.post("/score", json={"items": [item("x" * 40)]}).status_code == 200


def test_a_streamed_body_is_counted_as_it_arrives_and_refused_before_parsing(serve_faulty):
    base_url, app, runner = serve_faulty(max_body_bytes=4_096)
    runner.faults.calls.clear()  # forget the warm-up
    sent = []

    def chunks():  # no Content-Length: the server can only count
        for _ in range(64):
            sent.append(1)
            yield b'{"items": [' + b'{"prompt": "p", "response": "r"},' * 30

    r = httpx.post(f"{base_url}/score", content=chunks(), headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 413 and r.json()["error_type"] == "too_large"
    assert runner.faults.calls == [] and sent  # nothing was scored from it
    text = httpx.get(f"{base_url}/metrics").text
    assert 'r3hf_requests_total{error_type="too_large",route="/score",status="413"}' in text


def test_an_item_with_far_too_many_characters_is_refused_before_tokenizing():
    app, runner = faulty_app(max_length=64)  # default limit: 32 characters per token of the limit = 2048
    encoded = []
    inner_encode = runner.inner.encode
    runner.inner.encode = lambda *a: encoded.append(1) or inner_encode(*a)
    with in_process(app) as client:
        r = client.post("/score", json={"items": [item("ok"), item("y" * 5_000)]})
        assert r.status_code == 422 and "item 1" in r.json()["error"] and "--max-item-chars" in r.json()["error"]
        assert encoded == []  # neither item was tokenized
        chat = {"messages": [{"role": "user", "content": "u" * 3_000}, {"role": "assistant", "content": "a"}]}
        assert client.post("/score", json={"items": [chat]}).status_code == 422


def test_a_request_past_its_deadline_gets_504_and_its_queued_items_are_dropped(serve_faulty):
    base_url, app, runner = serve_faulty(request_timeout_s=0.5, max_wait_ms=0)
    runner.faults.calls.clear()  # forget the warm-up
    runner.faults.delay_s = 2.0
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(httpx.post, f"{base_url}/score", json={"items": [item("held")]}, timeout=30)
        time.sleep(0.2)  # the first occupies the forward; the second queues behind it
        second = pool.submit(httpx.post, f"{base_url}/score", json={"items": [item("a"), item("b"), item("c")]},
                             timeout=30)
        late = second.result()
        runner.release.set()
        assert first.result().status_code == 504  # its forward ran past the deadline too
    assert late.status_code == 504 and late.json()["error_type"] == "timeout"
    assert "--request-timeout-s" in late.json()["error"]
    deadline = time.monotonic() + 10
    while metric(httpx.get(f"{base_url}/metrics").text, "r3hf_items_skipped_total") < 3:
        assert time.monotonic() < deadline, "the timed-out request's queued items were not skipped"
        time.sleep(0.05)
    assert runner.faults.calls == [1]  # the forward never saw the abandoned items
    assert app.state.engine.admission.held == 0


SURROGATE_BODIES = {
    "/token_rewards": b'{"items": [{"prompt": "a\\ud800b", "response": "x"}]}',
    "/score": b'{"items": [{"messages": [{"role": "user", "content": "\\udfff"}, {"role": "assistant", "content": "k"}]}]}',
    "/get_reward": b'{"query": ["p\\ud83d"], "prompts": ["p"]}',
}


@pytest.mark.parametrize("path", sorted(SURROGATE_BODIES))
def test_text_that_is_not_unicode_is_a_422_before_the_tokenizer(path):
    app, _ = faulty_app()  # found by fuzzing: the real tokenizer raised on a lone surrogate (500)
    with in_process(app) as client:
        r = client.post(path, content=SURROGATE_BODIES[path], headers={"content-type": "application/json"})
        assert r.status_code == 422 and "surrogate" in r.json()["error"]
