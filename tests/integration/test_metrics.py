"""Every Prometheus metric moves when traffic flows: the demo reward model behind a real server on 127.0.0.1.

The forward is gated so that the gauges (in flight, queue depth) and the disconnect counter can be observed while
requests are held, not only after they finished.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from live_server import live_server
from r3hf_server import __version__
from r3hf_server.api.app import create_app
from r3hf_server.engine import build_runner
from r3hf_server.api.metrics import Metrics
from r3hf_server.settings import Settings

pytestmark = pytest.mark.slow

BUDGET = 4096
ITEM = {"prompt": "How was your day?", "response": " It was wonderful."}

# The list plus the extras this server exposes; test_every_exposed_metric_is_listed keeps it complete.
CHECKED_METRICS = {
    "r3hf_requests_total", "r3hf_requests_in_flight", "r3hf_queue_depth", "r3hf_request_duration_seconds",
    "r3hf_queue_duration_seconds", "r3hf_tokenize_duration_seconds", "r3hf_inference_duration_seconds",
    "r3hf_batch_size", "r3hf_batch_tokens", "r3hf_batch_padded_tokens", "r3hf_batch_token_budget",
    "r3hf_input_tokens", "r3hf_items_total", "r3hf_items_skipped_total", "r3hf_client_disconnects_total",
    "r3hf_model_ready", "r3hf_build_info", "r3hf_oom_splits_total",
}


class GatedRunner:
    """The real demo runner whose forward waits for a gate, so requests can be held in flight on purpose."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self._inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.forward_entered = threading.Event()

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._inner, name)

    def forward(self, batch):  # type: ignore[no-untyped-def]
        self.forward_entered.set()
        if not self.gate.wait(timeout=30):
            raise TimeoutError("the test never opened the gate")
        return self._inner.forward(batch)


@pytest.fixture(scope="module")
def gated():
    return GatedRunner(build_runner(Settings()))


@pytest.fixture(scope="module")
def server(gated):
    app = create_app(Settings(max_batch_tokens=BUDGET), gated)
    with live_server(app) as base_url:
        yield base_url, app


def scrape(base_url: str) -> dict[tuple[str, frozenset], float]:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_names_follow_the_prometheus_guide():
    for family in Metrics().registry.collect():
        assert family.name.startswith("r3hf_") and ":" not in family.name, family.name
        if family.type == "counter":  # the client library appends _total to counter samples
            assert any(s.name == family.name + "_total" for s in family.samples) or not family.samples
        if "duration" in family.name:
            assert family.name.endswith("_seconds"), family.name
        for label in ("path", "request_id", "model_path"):
            assert all(label not in s.labels for s in family.samples), f"{family.name}: high-cardinality {label}"


def test_every_exposed_metric_is_listed(server):
    base_url, _ = server
    families = text_string_to_metric_families(httpx.get(f"{base_url}/metrics").text)
    # the client library adds a _created gauge per counter and histogram: a timestamp, not a metric of ours
    exposed = {f.name + ("_total" if f.type == "counter" else "") for f in families if not f.name.endswith("_created")}
    assert exposed == CHECKED_METRICS


def test_state_metrics_describe_what_is_served(server):
    base_url, _ = server
    samples = scrape(base_url)
    info = httpx.get(f"{base_url}/info").json()
    build = dict(version=__version__, model=info["model"], fingerprint=info["fingerprint"], dtype=info["dtype"],
                 device=info["device"])
    assert value(samples, "r3hf_build_info", **build) == 1.0
    assert value(samples, "r3hf_model_ready") == 1.0
    assert value(samples, "r3hf_batch_token_budget") == BUDGET


def test_counters_and_histograms_move_with_traffic(server):
    base_url, _ = server
    before = scrape(base_url)
    ok = httpx.post(f"{base_url}/token_rewards", json={"items": [ITEM] * 3}, timeout=30)
    scored = httpx.post(f"{base_url}/score", json={"items": [ITEM, ITEM]}, timeout=30)
    invalid = httpx.post(f"{base_url}/token_rewards", json={"items": []}, timeout=30)
    unknown = httpx.get(f"{base_url}/no/such/route/{time.time()}", timeout=30)
    after = scrape(base_url)
    assert (ok.status_code, scored.status_code, invalid.status_code, unknown.status_code) == (200, 200, 422, 404)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("r3hf_requests_total", route="/token_rewards", status="200", error_type="") == 1
    assert delta("r3hf_requests_total", route="/score", status="200", error_type="") == 1
    assert delta("r3hf_requests_total", route="/token_rewards", status="422", error_type="invalid_request") == 1
    assert delta("r3hf_requests_total", route="other", status="404", error_type="not_found") == 1
    assert delta("r3hf_request_duration_seconds_count", route="/token_rewards") == 2
    assert delta("r3hf_items_total", route="/token_rewards") == 3
    assert delta("r3hf_items_total", route="/score") == 2

    tokens = ok.json()["usage"]["total_tokens"] + scored.json()["usage"]["total_tokens"]
    assert delta("r3hf_input_tokens_count") == 5 and delta("r3hf_input_tokens_sum") == tokens
    assert delta("r3hf_tokenize_duration_seconds_count") == 2
    assert delta("r3hf_queue_duration_seconds_count") == 5
    assert delta("r3hf_inference_duration_seconds_count") >= 2  # two requests, at least one batch each
    assert delta("r3hf_inference_duration_seconds_sum") > 0
    assert delta("r3hf_batch_size_sum") == 5
    assert delta("r3hf_batch_tokens_sum") == tokens
    assert delta("r3hf_batch_padded_tokens_sum") >= tokens
    assert value(after, "r3hf_requests_in_flight") == 0 and value(after, "r3hf_queue_depth") == 0


def test_timing_headers_split_the_total(server):
    base_url, _ = server
    response = httpx.post(f"{base_url}/token_rewards", json={"items": [ITEM] * 2},
                          headers={"x-request-id": "trace-me"}, timeout=30)
    ms = {name: float(response.headers[name]) for name in
          ("x-total-time", "x-queue-time", "x-tokenization-time", "x-inference-time")}
    assert response.headers["x-request-id"] == "trace-me"
    assert ms["x-inference-time"] > 0
    parts = ms["x-queue-time"] + ms["x-tokenization-time"] + ms["x-inference-time"]
    assert parts <= ms["x-total-time"] + 1.0  # each part is measured inside the total (1 ms of rounding slack)


def test_gauges_and_disconnects_move_while_requests_are_held(server, gated):
    base_url, _ = server
    before = scrape(base_url)
    gated.gate.clear()
    gated.forward_entered.clear()
    held = [threading.Thread(target=_post_score, args=(base_url, n)) for n in (1, 3)]
    try:
        held[0].start()
        assert gated.forward_entered.wait(10), "the first request never reached the forward"
        held[1].start()  # its 3 items queue behind the held forward
        wait_until(lambda: value(scrape(base_url), "r3hf_queue_depth") >= 3, "3 queued items")
        wait_until(lambda: value(scrape(base_url), "r3hf_requests_in_flight") == 2, "2 requests in flight")
        with pytest.raises(httpx.ReadTimeout):  # a client that gives up: its 2 queued items must not be scored
            httpx.post(f"{base_url}/score", json={"items": [ITEM, ITEM]}, timeout=0.5)
        wait_until(lambda: value(scrape(base_url), "r3hf_client_disconnects_total")
                   - value(before, "r3hf_client_disconnects_total") == 1, "the disconnect to be counted")
    finally:
        gated.gate.set()
        for thread in held:
            thread.join(timeout=30)
    after = scrape(base_url)
    assert value(after, "r3hf_items_skipped_total") - value(before, "r3hf_items_skipped_total") == 2
    assert value(after, "r3hf_requests_total", route="/score", status="499", error_type="client_disconnected") == 1
    assert value(after, "r3hf_queue_depth") == 0 and value(after, "r3hf_requests_in_flight") == 0


def _post_score(base_url: str, count: int) -> None:
    assert httpx.post(f"{base_url}/score", json={"items": [ITEM] * count}, timeout=30).status_code == 200


def test_model_ready_drops_to_zero_when_the_server_stops(gated):
    app = create_app(Settings(), gated)
    with live_server(app):
        assert app.state.metrics.registry.get_sample_value("r3hf_model_ready") == 1.0
    assert app.state.metrics.registry.get_sample_value("r3hf_model_ready") == 0.0
