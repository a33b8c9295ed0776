"""The client's retries, deadline, chunking, replicas and fingerprint pinning, over httpx.MockTransport replicas."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from mock_replicas import Replica, items, routed
from r3hf_client import AsyncRewardClient, RetryPolicy, RewardClient
from r3hf_client.errors import (
    AllReplicasDownError, DeadlineExceededError, FingerprintMismatchError, InvalidRequestError, NotReadyError,
    OverloadedError,
)
from r3hf_client.retry import Attempts, parse_retry_after
from r3hf_client.routing import Dispatch, HealthPolicy, ReplicaRouter
from r3hf_client.wire import ScoreResponse, TokenRewardsResponse

FAST = RetryPolicy(max_attempts=4, backoff_s=0.001, max_backoff_s=0.01, jitter=0.0)
QUICK_HEALTH = HealthPolicy(cooldown_s=0.01, max_cooldown_s=0.05, probe_timeout_s=1.0)


def test_retry_after_is_a_floor_and_backoff_doubles():
    policy = RetryPolicy(backoff_s=0.5, max_backoff_s=3.0, jitter=0.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert policy.delay(1, retry_after=7.0) == 7.0
    assert parse_retry_after("2") == 2.0 and parse_retry_after("0.25") == 0.25
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_the_deadline_stops_retries_that_would_pass_it():
    clock = lambda: 0.0  # noqa: E731
    attempts = Attempts(RetryPolicy(max_attempts=10, backoff_s=1.0, jitter=0.0), deadline_s=5.0, clock=clock)
    dispatch = Dispatch(ReplicaRouter(["http://a"], clock=clock), attempts)
    assert attempts.timeout(30.0) == 5.0
    dispatch.failed("http://a", OverloadedError("busy", status_code=429, error_type="overloaded"), retry_after=60.0)
    with pytest.raises(DeadlineExceededError, match="deadline") as caught:
        dispatch.next_step()  # the only replica is busy for 60 s: no retry can start before the deadline
    assert isinstance(caught.value.__cause__, OverloadedError)


def test_429_and_503_are_retried_honouring_retry_after():
    replica = Replica(failures=[(429, {"retry-after": "0.2"}), (503, {})])
    with RewardClient("http://a", transport=routed({"a": replica}), retry=FAST, health=QUICK_HEALTH) as client:
        started = time.monotonic()
        out = client.score(items(2))
    assert time.monotonic() - started >= 0.2
    assert [r.score for r in out.results] == [1.0, 2.0]
    assert replica.probes == 1  # the 503 marked it down: probed on /ready before the third attempt


def test_connection_errors_are_retried_and_422_is_not():
    flaky = Replica(failures=["drop", "drop"])
    with RewardClient("http://a", transport=routed({"a": flaky}), retry=FAST, health=QUICK_HEALTH) as client:
        assert client.score(items(1)).results[0].score == 1.0
    bad = Replica(failures=[(422, {})])
    with RewardClient("http://a", transport=routed({"a": bad}), retry=FAST) as client, pytest.raises(InvalidRequestError):
        client.score(items(1))
    assert bad.failures == [] and bad.requests == []


def test_retries_give_up_with_the_last_typed_error():
    # /ready says 200 but every request gets 503: the attempts run out, the last typed error is raised
    down = Replica(failures=[(503, {})] * 10)
    with RewardClient("http://a", transport=routed({"a": down}), retry=FAST, health=QUICK_HEALTH) as client:
        with pytest.raises(NotReadyError):
            client.score(items(1))
    assert len(down.failures) == 10 - FAST.max_attempts
    gone = Replica(dead=True)  # refuses everything: the client waits for it until the deadline, then names it
    with RewardClient("http://a", transport=routed({"a": gone}), retry=FAST, health=QUICK_HEALTH,
                      deadline=0.3) as client:
        started = time.monotonic()
        with pytest.raises(AllReplicasDownError, match="http://a: down .*ConnectError: connection refused"):
            client.info()
    assert 0.3 <= time.monotonic() - started < 1.0


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
    a, b = Replica(), Replica(dead=True)
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
                                     max_concurrency=2, health=QUICK_HEALTH) as client:
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
