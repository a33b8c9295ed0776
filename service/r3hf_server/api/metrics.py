"""Prometheus metrics, named by the Prometheus guide: prefix r3hf_, base units, counters end in _total, no colons.

One registry per app, so two apps in one process (tests) never share counts. Labels stay low-cardinality: `route` is
the matched route template (or "other"), `status` the numeric HTTP code, `error_type` the body's error kind.
The batcher reports through the BatchObserver methods at the bottom without knowing about Prometheus.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..engine import BatchStats

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_TOKEN_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
_BATCH_TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
_BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

# Probes and scrapes are not load: counting them in flight would keep the autoscaling signal above zero forever.
PROBE_ROUTES = frozenset({"/metrics", "/health", "/ready"})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._define_request_metrics()
        self._define_batch_metrics()
        self._define_state_metrics()

    def _define_request_metrics(self) -> None:
        r = self.registry
        self.requests = Counter(
            "r3hf_requests", "HTTP requests by route template, numeric status code and error type.",
            ["route", "status", "error_type"], registry=r,
        )
        self.request_duration = Histogram(
            "r3hf_request_duration_seconds", "Time from request start to response, by route.", ["route"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.in_flight = Gauge(
            "r3hf_requests_in_flight", "Requests being served, probes and scrapes excluded.", registry=r
        )
        self.items = Counter("r3hf_items", "Items scored, by route.", ["route"], registry=r)
        self.input_tokens = Histogram(
            "r3hf_input_tokens", "Tokens per scored item (prompt + response + special tokens).",
            buckets=_TOKEN_BUCKETS, registry=r,
        )
        self.tokenize_duration = Histogram(
            "r3hf_tokenize_duration_seconds", "Time to tokenize one request's items.", buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.client_disconnects = Counter(
            "r3hf_client_disconnects", "Requests whose client went away before the response was ready.", registry=r
        )

    def _define_batch_metrics(self) -> None:
        r = self.registry
        self.queue_depth = Gauge("r3hf_queue_depth", "Items waiting for a forward batch.", registry=r)
        self.queue_duration = Histogram(
            "r3hf_queue_duration_seconds", "Time an item waited in the queue.", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.inference_duration = Histogram(
            "r3hf_inference_duration_seconds", "Time of one forward batch.", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram(
            "r3hf_batch_size", "Items per forward batch.", buckets=_BATCH_SIZE_BUCKETS, registry=r
        )
        self.batch_tokens = Histogram(
            "r3hf_batch_tokens", "Real (unpadded) tokens per forward batch.", buckets=_BATCH_TOKEN_BUCKETS, registry=r
        )
        self.batch_padded_tokens = Histogram(
            "r3hf_batch_padded_tokens", "Token positions the forward passes of one batch held, padding included "
            "(the runner's cost model: what --max-batch-tokens bounds).",
            buckets=_BATCH_TOKEN_BUCKETS, registry=r,
        )
        self.batch_token_budget = Gauge(
            "r3hf_batch_token_budget", "The configured token budget of one forward batch (--max-batch-tokens).",
            registry=r,
        )
        self.items_skipped = Counter(
            "r3hf_items_skipped", "Queued items dropped before the forward because their request went away "
            "(client disconnected or --request-timeout-s passed).",
            registry=r,
        )
        self.oom_splits = Counter(
            "r3hf_oom_splits", "Forward batches that ran out of device memory and were retried in halves.", registry=r
        )

    def _define_state_metrics(self) -> None:
        r = self.registry
        self.model_ready = Gauge(
            "r3hf_model_ready", "1 while the model is loaded, the worker runs and the server is not draining.",
            registry=r,
        )
        self.build_info = Gauge(
            "r3hf_build_info", "Constant 1, labelled with the version and what is served (model fingerprint).",
            ["version", "model", "fingerprint", "dtype", "device"], registry=r,
        )

    def request_done(self, route: str, status: int, error_type: str, seconds: float) -> None:
        self.requests.labels(route, str(status), error_type).inc()
        self.request_duration.labels(route).observe(seconds)

    def items_scored(self, route: str, token_counts: list[int], tokenize_seconds: float) -> None:
        self.tokenize_duration.observe(tokenize_seconds)
        self.items.labels(route).inc(len(token_counts))
        for count in token_counts:
            self.input_tokens.observe(count)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def watch_ready(self, ready: Callable[[], bool]) -> None:
        """Read readiness at scrape time, so a dead worker shows as 0 without anyone having to notice it first."""
        self.model_ready.set_function(lambda: 1.0 if ready() else 0.0)

    # BatchObserver
    def batch_done(self, stats: BatchStats) -> None:
        self.batch_size.observe(stats.size)
        self.batch_tokens.observe(stats.tokens)
        self.batch_padded_tokens.observe(stats.cost_tokens)
        self.inference_duration.observe(stats.inference_seconds)

    def item_dequeued(self, queue_seconds: float) -> None:
        self.queue_duration.observe(queue_seconds)

    def item_skipped(self) -> None:
        self.items_skipped.inc()

    def batch_split(self, size: int) -> None:
        self.oom_splits.inc()
