"""Prometheus metrics (prefix r3hf_, base units, counters end in _total), one registry per app."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..batcher import BatchStats

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_TOKEN_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
_BATCH_TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
_BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "r3hf_requests", "HTTP requests by route, status code and error type.",
            ["route", "status", "error_type"], registry=r,
        )
        self.request_duration = Histogram(
            "r3hf_request_duration_seconds", "Time from request start to response.", ["route"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.in_flight = Gauge("r3hf_requests_in_flight", "Requests being served.", registry=r)
        self.items = Counter("r3hf_items", "Items scored.", ["route"], registry=r)
        self.input_tokens = Histogram(
            "r3hf_input_tokens", "Tokens per scored item.", buckets=_TOKEN_BUCKETS, registry=r
        )
        self.model_ready = Gauge("r3hf_model_ready", "1 when the model is loaded and the worker runs.", registry=r)
        self.build_info = Gauge(
            "r3hf_build_info", "Constant 1, labelled with the version and what is served.",
            ["version", "model", "fingerprint", "dtype", "device"], registry=r,
        )
        self.queue_depth = Gauge("r3hf_queue_depth", "Items waiting for a forward batch.", registry=r)
        self.queue_duration = Histogram(
            "r3hf_queue_duration_seconds", "Time an item waited in the queue.", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.tokenize_duration = Histogram(
            "r3hf_tokenize_duration_seconds", "Time to tokenize a request's items.", buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_duration = Histogram(
            "r3hf_inference_duration_seconds", "Time of one forward batch.", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram("r3hf_batch_size", "Items per forward batch.", buckets=_BATCH_SIZE_BUCKETS, registry=r)
        self.batch_tokens = Histogram(
            "r3hf_batch_tokens", "Real (unpadded) tokens per forward batch.", buckets=_BATCH_TOKEN_BUCKETS, registry=r
        )
        self.batch_padded_tokens = Histogram(
            "r3hf_batch_padded_tokens", "Padded tokens (longest x count) per forward batch.",
            buckets=_BATCH_TOKEN_BUCKETS, registry=r,
        )
        self.client_disconnects = Counter(
            "r3hf_client_disconnects", "Queued items dropped before the forward because their request went away.",
            registry=r,
        )

    # BatchObserver: the batcher reports here without knowing about Prometheus.
    def batch_done(self, stats: BatchStats) -> None:
        self.batch_size.observe(stats.size)
        self.batch_tokens.observe(stats.tokens)
        self.batch_padded_tokens.observe(stats.padded_tokens)
        self.inference_duration.observe(stats.inference_seconds)

    def item_dequeued(self, queue_seconds: float) -> None:
        self.queue_duration.observe(queue_seconds)

    def item_skipped(self) -> None:
        self.client_disconnects.inc()

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)
