"""Replica routing without a server: failover, cooldowns and /ready probes, least-loaded choice, all replicas down,
exactly-once results — in the shared core (``ReplicaRouter`` on a fake clock) and through both clients."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mock_replicas import Replica, items, routed
from r3hf_client import AsyncRewardClient, RetryPolicy, RewardClient
from r3hf_client.errors import AllReplicasDownError, ConnectionFailedError, DeadlineExceededError, R3HFError
from r3hf_client.routing import HealthPolicy, Probe, ReplicaRouter, Send, Wait

FAST = RetryPolicy(max_attempts=4, backoff_s=0.001, max_backoff_s=0.01, jitter=0.0)
QUICK_HEALTH = HealthPolicy(cooldown_s=0.02, max_cooldown_s=0.1, probe_timeout_s=1.0)
REFUSED = ConnectionFailedError("no answer from http://a: ConnectError: connection refused")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_cooldown_doubles_and_is_capped():
    policy = HealthPolicy(cooldown_s=0.5, max_cooldown_s=3.0)
    assert [policy.cooldown(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError):
        HealthPolicy(cooldown_s=2.0, max_cooldown_s=1.0)


def test_a_failed_replica_is_avoided_then_probed_before_reuse():
    clock = FakeClock()
    router = ReplicaRouter(["http://a", "http://b"], HealthPolicy(cooldown_s=1.0, max_cooldown_s=8.0), clock)
    router.failed("http://a", REFUSED, backoff_s=0.0)
    assert [router.choose() for _ in range(3)] == [Send("http://b")] * 3  # new requests avoid the down replica
    clock.now += 1.0
    assert router.choose() == Probe("http://a", 5.0)  # cooldown over: probed before any request goes there
    assert router.choose() == Send("http://b")  # one probe at a time; meanwhile b serves
    router.probed("http://a", ready=False, failure="ConnectError: connection refused")
    clock.now += 1.5
    assert router.choose() == Send("http://b")  # second failure in a row: 2 s cooldown
    clock.now += 0.5
    assert router.choose() == Probe("http://a", 5.0)
    router.probed("http://a", ready=True)
    with router.outstanding("http://b"):
        assert router.choose() == Send("http://a")  # back, and the least loaded
    stats = router.snapshot()["http://a"]
    assert stats.healthy and stats.failures_in_a_row == 2 and "connection refused" in stats.last_failure


def test_a_retry_goes_to_another_replica_than_the_one_that_failed():
    router = ReplicaRouter(["http://a", "http://b", "http://c"], clock=FakeClock())
    overloaded = R3HFError("x")
    for url in ("http://a", "http://b", "http://c"):
        with router.outstanding(url):
            pass
    assert router.choose(avoid="http://b").url != "http://b"
    router.failed("http://a", overloaded, backoff_s=0.0)  # not a marking-down failure: a stays up
    assert router.choose(avoid="http://a").url != "http://a"
    single = ReplicaRouter(["http://only"], clock=FakeClock())
    assert single.choose(avoid="http://only") == Send("http://only")  # no other replica: the same one again


def test_new_requests_go_to_the_least_loaded_replica_ties_in_turn():
    router = ReplicaRouter(["http://a", "http://b"], clock=FakeClock())
    assert [router.choose().url for _ in range(4)] == ["http://a", "http://b", "http://a", "http://b"]
    with router.outstanding("http://a"), router.outstanding("http://a"), router.outstanding("http://b"):
        assert router.choose() == Send("http://b")


def test_when_every_replica_is_down_the_request_waits_for_the_first_cooldown():
    clock = FakeClock()
    router = ReplicaRouter(["http://a", "http://b"], HealthPolicy(cooldown_s=1.0, max_cooldown_s=8.0), clock)
    router.failed("http://a", REFUSED, backoff_s=0.0)
    clock.now += 0.25
    router.failed("http://b", REFUSED, backoff_s=0.0)
    assert router.choose() == Wait(0.75, all_down=True)


def test_the_issue_job_survives_a_dead_replica_and_every_retry_fails_over():
    hosts: dict[str, list[str]] = {}
    alive, dead = Replica(hosts_by_item=hosts), Replica(dead=True, hosts_by_item=hosts)
    with RewardClient(["http://dead", "http://alive"], transport=routed({"dead": dead, "alive": alive}),
                      chunk_size=4, max_concurrency=4, retry=FAST, health=QUICK_HEALTH) as client:
        out = client.token_rewards(items(96))
        stats = client.replica_stats()
    assert [r.score for r in out.results] == [float(i + 1) for i in range(96)]
    assert sum(len(body["items"]) for body in alive.requests) == 96
    assert all(route[-1] == "alive" and route.count("dead") <= 1 for route in hosts.values()), hosts
    assert not stats["http://dead"].healthy and stats["http://alive"].answered == 24


def test_a_slow_replica_gets_fewer_chunks():
    fast = Replica()

    class Slow(Replica):  # answers only after the fast one has answered 16 more: slower by a ratio, not a clock
        def _answer(self, request, body, failure):  # type: ignore[no-untyped-def]
            target, give_up_at = len(fast.requests) + 16, time.monotonic() + 0.5
            while len(fast.requests) < target and time.monotonic() < give_up_at:
                time.sleep(0.002)
            return super()._answer(request, body, failure)

    slow = Slow()
    with RewardClient(["http://slow", "http://fast"], transport=routed({"slow": slow, "fast": fast}),
                      chunk_size=1, max_concurrency=4) as client:
        client.score(items(80))
    assert len(slow.requests) + len(fast.requests) == 80
    assert len(slow.requests) < 80 / 4, (len(slow.requests), len(fast.requests))  # about 2 in 18


def test_all_replicas_down_then_one_returns_within_the_deadline():
    a, b = Replica(dead=True), Replica(dead=True)
    threading.Timer(0.3, lambda: setattr(b, "dead", False)).start()
    with RewardClient(["http://a", "http://b"], transport=routed({"a": a, "b": b}), chunk_size=2,
                      max_concurrency=2, retry=FAST, health=QUICK_HEALTH, deadline=10) as client:
        started = time.monotonic()
        out = client.score(items(6))
    assert 0.3 <= time.monotonic() - started < 3.0
    assert [r.score for r in out.results] == [float(i + 1) for i in range(6)] and b.probes >= 1


def test_all_replicas_down_until_the_deadline_names_each_last_failure():
    a, b = Replica(dead=True), Replica(failures=[(503, {})] * 1000)
    b_ready = b.__call__

    def b_draining(request):  # type: ignore[no-untyped-def]
        return b._answer(request, {}, (503, {})) if request.url.path == "/ready" else b_ready(request)

    with RewardClient(["http://a", "http://b"], transport=routed({"a": a, "b": b_draining}), retry=FAST,
                      health=QUICK_HEALTH, deadline=0.4) as client:
        started = time.monotonic()
        with pytest.raises(AllReplicasDownError) as caught:
            client.score(items(3))
    assert time.monotonic() - started >= 0.4
    message = str(caught.value)
    assert "http://a: down" in message and "connection refused" in message
    assert "http://b: down" in message and "HTTP 503" in message
    assert isinstance(caught.value, DeadlineExceededError)


def test_an_answer_lost_to_a_reset_is_retried_elsewhere_and_counted_once():
    a, b = Replica(failures=["lost"]), Replica()
    with RewardClient(["http://a", "http://b"], transport=routed({"a": a, "b": b}), chunk_size=3,
                      max_concurrency=1, retry=FAST, health=QUICK_HEALTH) as client:
        out = client.token_rewards(items(9))
    assert [r.index for r in out.results] == list(range(9))
    assert [r.score for r in out.results] == [float(i + 1) for i in range(9)]
    assert out.usage.num_items == 9  # the lost answer's work is not counted


def test_an_answer_missing_an_item_raises_instead_of_shifting_results():
    class Short(Replica):
        def answer(self, path: str, body: dict) -> dict:
            answer = super().answer(path, body)
            answer["results"] = answer["results"][:-1]
            return answer

    with RewardClient("http://a", transport=routed({"a": Short()}), chunk_size=2) as client:
        with pytest.raises(R3HFError, match="exactly once"):
            client.score(items(4))


def test_the_call_deadline_covers_every_chunk_not_each_one():
    slow = Replica(delay_s=0.1)
    with RewardClient("http://a", transport=routed({"a": slow}), chunk_size=1, max_concurrency=1,
                      deadline=0.35) as client:
        with pytest.raises(DeadlineExceededError):
            client.score(items(10))  # ten 0.1 s chunks cannot fit in 0.35 s even though each one would
    assert len(slow.requests) <= 4


def test_the_async_client_routes_like_the_sync_one():
    hosts: dict[str, list[str]] = {}
    alive, dead = Replica(hosts_by_item=hosts, delay_s=0.002), Replica(dead=True, hosts_by_item=hosts)
    down_a, down_b = Replica(dead=True), Replica(dead=True)

    async def run():  # type: ignore[no-untyped-def]
        async with AsyncRewardClient(["http://dead", "http://alive"], retry=FAST, health=QUICK_HEALTH,
                                     transport=routed({"dead": dead, "alive": alive}), chunk_size=4) as client:
            out = await client.score(items(40))
        asyncio.get_running_loop().call_later(0.2, lambda: setattr(down_b, "dead", False))
        async with AsyncRewardClient(["http://a", "http://b"], transport=routed({"a": down_a, "b": down_b}),
                                     retry=FAST, health=QUICK_HEALTH, deadline=10) as client:
            back = await client.score(items(4))
        return out, back

    out, back = asyncio.run(run())
    assert [r.score for r in out.results] == [float(i + 1) for i in range(40)]
    assert all(route[-1] == "alive" and route.count("dead") <= 1 for route in hosts.values())
    assert [r.score for r in back.results] == [1.0, 2.0, 3.0, 4.0] and down_b.probes >= 1
