"""Retry-After from the measured drain rate: items ahead ÷ items per second of forward time, within [1, 30] s."""

from __future__ import annotations

import pytest

from r3hf_server.admission import Admission
from r3hf_server.drain_rate import DrainRate, MeteredObserver
from r3hf_server.errors import OverloadedError


def test_retry_after_is_the_items_ahead_over_the_measured_rate():
    rate = DrainRate()
    assert rate.retry_after_s(500) == 1  # nothing measured yet: the shortest wait
    for _ in range(4):
        rate.record(items=50, seconds=0.5)  # 100 items/s while busy
    assert rate.items_per_s() == pytest.approx(100)
    assert rate.retry_after_s(450) == 5
    assert rate.retry_after_s(10) == 1  # never under 1 s
    assert rate.retry_after_s(1_000_000) == 30  # never over 30 s


def test_a_refused_request_is_told_when_the_excess_will_have_drained():
    rate = DrainRate()
    rate.record(items=10, seconds=1.0)  # 10 items/s
    admission = Admission(100, retry_after_s=rate.retry_after_s)
    with admission.admit(90):
        with pytest.raises(OverloadedError) as refused:
            with admission.admit(60):
                pass
    assert refused.value.retry_after_s == 5  # 90 + 60 - 100 = 50 items must drain first: 5 s at 10 items/s
    assert "retry after 5 s" in refused.value.message


def test_the_metered_observer_counts_batches_and_forwards_every_hook():
    seen = []

    class Inner:
        def batch_done(self, stats):
            seen.append(("done", stats.size))

        def item_skipped(self):
            seen.append(("skipped",))

    class Stats:
        size, inference_seconds = 8, 0.5

    rate = DrainRate()
    observer = MeteredObserver(Inner(), rate)
    observer.batch_done(Stats())
    observer.item_skipped()
    assert seen == [("done", 8), ("skipped",)] and rate.items_per_s() == pytest.approx(16)
    MeteredObserver(None, rate).item_dequeued(0.1)  # no inner observer: hooks are no-ops
