"""The client's retries, deadline, chunking, replicas and fingerprint pinning, over httpx.MockTransport replicas."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from r3hf_client import AsyncRewardClient, RetryPolicy, RewardClient
from r3hf_client.errors import (
    ConnectionFailedError, DeadlineExceededError, FingerprintMismatchError, InvalidRequestError, NotReadyError,
    OverloadedError,
)
from r3hf_client.retry import Attempts, parse_retry_after
from r3hf_client.wire import ScoreResponse, TokenRewardsResponse

FAST = RetryPolicy(max_attempts=4, backoff_s=0.001, max_backoff_s=0.01, jitter=0.0)


class Replica:
    """A scripted server: answers ``failures`` first (status, headers), then scores items as len(response)."""

    def __init__(self, fingerprint: str = "fp-a", failures=(), delay_s: float = 0.0) -> None:
        self.fingerprint, self.failures, self.delay_s = fingerprint, list(failures), delay_s
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            failure = self.failures.pop(0) if self.failures else None
        try:
            time.sleep(self.delay_s)
            if failure == "drop":
                raise httpx.ConnectError("connection refused", request=request)
            if failure is not None:
                status, headers = failure
                return httpx.Response(status, headers=headers, json={"error": "busy", "error_type": _KIND[status]})
            body = json.loads(request.content)
            self.requests.append(body)
            return httpx.Response(200, json=self.answer(request.url.path, body))
        finally:
            with self.lock:
                self.in_flight -= 1

    def answer(self, path: str, body: dict) -> dict:
        results = [
            {"index": i, "score": float(len(item["response"])), "prompt_score": 0.0,
             "num_response_tokens": len(item["response"]), "truncated": False, "template_changed_response": False,
             **({"token_rewards": [1.0] * len(item["response"])} if path == "/token_rewards" else {})}
            for i, item in enumerate(body["items"])
        ]
        n = len(results)
        usage = {"num_items": n, "prompt_tokens": n, "response_tokens": n, "total_tokens": 2 * n}
        return {"model": "m", "fingerprint": self.fingerprint, "results": results, "usage": usage}


_KIND = {429: "overloaded", 503: "not_ready", 422: "invalid_request", 502: "internal"}


def routed(replicas: dict[str, Replica]) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: replicas[request.url.host](request))


def items(n: int) -> list[dict]:
    return [{"prompt": "p", "response": "x" * (i + 1)} for i in range(n)]


def test_retry_after_is_a_floor_and_backoff_doubles():
    policy = RetryPolicy(backoff_s=0.5, max_backoff_s=3.0, jitter=0.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert policy.delay(1, retry_after=7.0) == 7.0
    assert parse_retry_after("2") == 2.0 and parse_retry_after("0.25") == 0.25
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_the_deadline_stops_retries_that_would_pass_it():
    clock = iter([0.0, 0.0, 0.0]).__next__
    attempts = Attempts(RetryPolicy(max_attempts=10, backoff_s=1.0, jitter=0.0), deadline_s=5.0, clock=clock)
    attempts.timeout(30.0)
    with pytest.raises(DeadlineExceededError, match="deadline") as caught:
        attempts.wait_after(OverloadedError("busy", status_code=429, error_type="overloaded"), retry_after=60.0)
    assert isinstance(caught.value.__cause__, OverloadedError)


def test_429_and_503_are_retried_honouring_retry_after():
    replica = Replica(failures=[(429, {"retry-after": "0.2"}), (503, {})])
    with RewardClient("http://a", transport=routed({"a": replica}), retry=FAST) as client:
        started = time.monotonic()
        out = client.score(items(2))
    assert time.monotonic() - started >= 0.2
    assert [r.score for r in out.results] == [1.0, 2.0]


def test_connection_errors_are_retried_and_422_is_not():
    flaky = Replica(failures=["drop", "drop"])
    with RewardClient("http://a", transport=routed({"a": flaky}), retry=FAST) as client:
        assert client.score(items(1)).results[0].score == 1.0
    bad = Replica(failures=[(422, {})])
    with RewardClient("http://a", transport=routed({"a": bad}), retry=FAST) as client, pytest.raises(InvalidRequestError):
        client.score(items(1))
    assert bad.failures == [] and bad.requests == []


def test_retries_give_up_with_the_last_typed_error():
    down = Replica(failures=[(503, {})] * 10)
    with RewardClient("http://a", transport=routed({"a": down}), retry=FAST) as client, pytest.raises(NotReadyError):
        client.score(items(1))
    assert len(down.failures) == 10 - FAST.max_attempts
    gone = Replica(failures=["drop"] * 10)
    with RewardClient("http://a", transport=routed({"a": gone}), retry=FAST) as client:
        with pytest.raises(ConnectionFailedError, match="http://a"):
            client.info()


def test_large_jobs_are_chunked_sent_concurrently_and_merged_in_order():
    replica = Replica(delay_s=0.05)
    seen = []
    with RewardClient("http://a", transport=routed({"a": replica}), chunk_size=3, max_concurrency=2,
                      progress=lambda done, total: seen.append((done, total))) as client:
        out = client.token_rewards(items(10))
    assert sorted(len(body["items"]) for body in replica.requests) == [1, 3, 3, 3]
    assert replica.max_in_flight == 2
    assert [r.index for r in out.results] == list(range(10))
    assert [r.score for r in out.results] == [float(i + 1) for i in range(10)]
    assert out.usage.num_items == 10 and out.usage.total_tokens == 20
    assert seen[-1] == (10, 10)
    TokenRewardsResponse.model_validate(out.model_dump())


def test_replicas_share_the_chunks_and_cover_for_each_other():
    a, b = Replica(), Replica(failures=["drop"] * 100)
    with RewardClient(["http://a", "http://b"], transport=routed({"a": a, "b": b}), chunk_size=2,
                      max_concurrency=1, retry=FAST) as client:
        out = client.score(items(6))
    assert [r.score for r in out.results] == [float(i + 1) for i in range(6)]
    assert sum(len(body["items"]) for body in a.requests) == 6  # b never answered; every chunk failed over to a
    c, d = Replica(), Replica()
    with RewardClient(["http://c", "http://d"], transport=routed({"c": c, "d": d}), chunk_size=2,
                      max_concurrency=1) as client:
        client.score(items(8))
    assert len(c.requests) == len(d.requests) == 2


def test_a_replica_serving_another_model_fails_loudly():
    a, b = Replica("fp-a"), Replica("fp-b")
    # one request at a time so the first answer (the one that pins) comes from replica a, not whichever is faster
    urls = ["http://a", "http://b"]
    with RewardClient(urls, transport=routed({"a": a, "b": b}), chunk_size=1, max_concurrency=1) as client:
        with pytest.raises(FingerprintMismatchError, match="fp-b"):
            client.score(items(4))
        assert client.fingerprint == "fp-a"
    with RewardClient("http://b", transport=routed({"b": b}), fingerprint="fp-a") as client:
        with pytest.raises(FingerprintMismatchError, match="pinned to fp-a"):
            client.score(items(1))


def test_the_async_client_retries_chunks_and_pins_like_the_sync_one():
    replica = Replica(failures=[(429, {"retry-after": "0"}), "drop"], delay_s=0.02)

    async def run() -> tuple[ScoreResponse, TokenRewardsResponse]:
        async with AsyncRewardClient("http://a", transport=routed({"a": replica}), retry=FAST, chunk_size=2,
                                     max_concurrency=2) as client:
            return await client.score(items(5)), await client.token_rewards(items(3), baseline="zero")

    scores, rewards = asyncio.run(run())
    assert [r.score for r in scores.results] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [r.index for r in rewards.results] == [0, 1, 2]
    assert replica.max_in_flight <= 2
    reward_bodies = [body for body in replica.requests if "encoding_format" in body]
    assert len(reward_bodies) == 2 and all(body["baseline"] == "zero" for body in reward_bodies)

    async def mismatch() -> None:
        other = Replica("fp-z")
        async with AsyncRewardClient("http://z", transport=routed({"z": other}), fingerprint="fp-a") as client:
            await client.score(items(1))

    with pytest.raises(FingerprintMismatchError):
        asyncio.run(mismatch())


def test_api_key_and_encoding_format_go_into_every_request():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers.get("authorization"), json.loads(request.content)))
        return httpx.Response(200, json=Replica().answer("/token_rewards", json.loads(request.content)))

    with RewardClient("http://a", transport=httpx.MockTransport(handler), api_key="k1",
                      encoding_format="base64") as client:
        client.token_rewards(items(1))
    assert seen[0][0] == "Bearer k1" and seen[0][1]["encoding_format"] == "base64"
