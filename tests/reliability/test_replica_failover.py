"""One client job over two real `r3hf serve` replicas (demo model, 127.0.0.1) while one is SIGKILLed, SIGTERMed
(drains, 503) or slow, and while every replica is down until one starts: the job completes, each item answered
once and equal to the surviving replica's answers. The issue's job: 1,536 items, chunk_size 64, 4 in flight.

The same scenarios, with timings printed side by side: load_tests/replica_failover.py."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from r3hf_client import RewardClient
from r3hf_client.wire import TokenRewardsResponse
from replica_fleet import ReplicaProcess, job_items, max_abs_difference

pytestmark = pytest.mark.slow

ITEMS = job_items(1536)
JOB = dict(chunk_size=64, max_concurrency=4, deadline=300)
SERVE = ["--max-batch-tokens", "4096"]
FAULT_AFTER_S = 1.5
SLOWDOWN = 4.0  # the slow replica's forwards take 4x as long as the healthy one's, however busy the machine


@dataclass
class Fleet:
    survivor: ReplicaProcess  # stays up for the whole module
    kill_victim: ReplicaProcess
    term_victim: ReplicaProcess
    slow: ReplicaProcess


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Fleet:  # type: ignore[no-untyped-def]
    log_dir = tmp_path_factory.mktemp("replicas")
    replicas = [ReplicaProcess(SERVE, log_dir=log_dir, name=name) for name in ("survivor", "kill", "term")]
    replicas.append(ReplicaProcess(SERVE, slowdown=SLOWDOWN, log_dir=log_dir, name="slow"))
    try:
        for replica in replicas:
            replica.start()  # all load at once: the start-up is paid once
        for replica in replicas:
            replica.wait_ready()
        yield Fleet(*replicas)
    finally:
        for replica in replicas:
            replica.stop()


def run_job(urls: list[str], fault=None) -> tuple[TokenRewardsResponse, float, dict]:  # type: ignore[no-untyped-def]
    timer = threading.Timer(FAULT_AFTER_S, fault) if fault else None
    with RewardClient(urls, **JOB) as client:
        started = time.monotonic()
        if timer:
            timer.start()
        try:
            out = client.token_rewards(ITEMS)
        finally:
            if timer:
                timer.cancel()
        return out, time.monotonic() - started, client.replica_stats()


def assert_complete_and_equal(out: TokenRewardsResponse, reference: TokenRewardsResponse) -> None:
    assert [r.index for r in out.results] == list(range(len(ITEMS)))
    assert out.usage.num_items == len(ITEMS)
    assert max_abs_difference(out, reference) <= 1e-4


def test_sigkill_of_one_replica_mid_job_loses_nothing(fleet):
    victim = fleet.kill_victim
    reference, single_s, _ = run_job([fleet.survivor.url])  # right before: same machine load, same answers
    out, wall_s, stats = run_job([victim.url, fleet.survivor.url], victim.kill)
    assert victim.proc.returncode == -9, "the victim must have been killed mid-job"
    assert_complete_and_equal(out, reference)
    assert stats[victim.url].failed >= 1 and not stats[victim.url].healthy  # it really failed under the job
    assert wall_s <= 2 * single_s, (wall_s, single_s)


def test_sigterm_of_one_replica_mid_job_drains_and_loses_nothing(fleet):
    victim = fleet.term_victim
    reference, single_s, _ = run_job([fleet.survivor.url])
    out, wall_s, stats = run_job([victim.url, fleet.survivor.url], victim.terminate)
    assert victim.proc.wait(timeout=60) == 0 and "drained" in victim.log()
    assert_complete_and_equal(out, reference)
    assert stats[victim.url].answered >= 1  # it answered what it had accepted before draining
    assert wall_s <= 2 * single_s, (wall_s, single_s)


def test_a_slow_replica_receives_clearly_fewer_chunks(fleet):
    slow, fast = fleet.slow, fleet.survivor
    reference, _, _ = run_job([fast.url])
    out, _, stats = run_job([slow.url, fast.url])
    assert_complete_and_equal(out, reference)
    slow_chunks, fast_chunks = stats[slow.url].answered, stats[fast.url].answered
    assert slow_chunks + fast_chunks == len(ITEMS) // JOB["chunk_size"]
    assert slow_chunks * 2 <= fast_chunks, (slow_chunks, fast_chunks)
    assert slow.requests_answered() == slow_chunks  # the slow server's own count agrees


def test_all_replicas_down_then_one_comes_back_within_the_deadline(tmp_path):
    # The fake runner: what is tested is the client waiting for a server process, not the model (saves a load).
    fake = ["--runner", "fake"]
    never, late = ReplicaProcess(fake, log_dir=tmp_path, name="never"), ReplicaProcess(fake, log_dir=tmp_path)
    try:
        with RewardClient([never.url, late.url], **JOB) as client:
            threading.Timer(FAULT_AFTER_S, late.start).start()  # nothing listens on either port before this
            out = client.token_rewards(ITEMS[:256])
            stats = client.replica_stats()
    finally:
        late.stop()
    assert [r.index for r in out.results] == list(range(256))
    assert stats[late.url].answered == 4 and stats[never.url].answered == 0
    assert "refused" in stats[never.url].last_failure.lower()
