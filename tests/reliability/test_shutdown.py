"""SIGTERM drains: /ready turns 503 at once, new requests get 503, every request accepted before the signal gets
its normal answer, and the process exits 0. A real `r3hf serve` process with the demo model, 32 concurrent clients."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import httpx
import pytest

from live_server import free_port, wait_ready
from r3hf_client.wire import ScoreResponse

pytestmark = pytest.mark.slow

CLIENTS = 32
ITEMS = [{"prompt": "How was your day?", "response": f" It was wonderful, truly lovely, number {k}." * 4}
         for k in range(32)]  # ~1-2 s a request on 2 CPU cores: most clients are mid-request at any moment


@dataclass
class Outcome:
    sent_at: float
    done_at: float
    status: int | None  # None: no HTTP answer
    error: str = ""


def trainer(base_url: str, outcomes: list[Outcome], stop: threading.Event, sending: dict[int, float]) -> None:
    """Sends requests back to back, like a trainer worker, until the server turns it away. ``sending`` holds when
    each worker's unanswered request was sent."""
    worker = threading.get_ident()
    with httpx.Client(base_url=base_url, timeout=60) as client:
        while not stop.is_set():
            sent = time.monotonic()
            sending[worker] = sent
            try:
                r = client.post("/score", json={"items": ITEMS})
            except httpx.TransportError as exc:
                outcomes.append(Outcome(sent, time.monotonic(), None, type(exc).__name__))
                return
            finally:
                sending.pop(worker, None)
            status = r.status_code if r.status_code != 200 or complete(r) else -1  # -1: a 200 with a bad body
            outcomes.append(Outcome(sent, time.monotonic(), status, r.text if status != 200 else ""))
            if status != 200:
                return  # 503: this replica is going away; a trainer moves to another


def signal_when_most_are_mid_request(sending: dict[int, float], timeout_s: float = 20.0) -> None:
    """Wait until well into the run and until most workers have had a request out for a while. Fair batching answers
    the clients' requests together, so they are sent again together: a fixed moment could fall just after a wave of
    new requests, with none of them clearly accepted yet (seen: 4 of 32)."""
    time.sleep(3.0)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = time.monotonic()
        if sum(1 for sent in list(sending.values()) if now - sent > 0.4) >= CLIENTS // 2 + 4:
            return
        time.sleep(0.01)


def complete(response: httpx.Response) -> bool:
    body = ScoreResponse.model_validate(response.json())
    return len(body.results) == len(ITEMS) and all(math.isfinite(x.score) for x in body.results)


def test_sigterm_drains_every_accepted_request_and_exits_0(tmp_path):
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "r3hf_server", "serve", "--port", str(port), "--drain-timeout-s", "60",
         "--max-batch-tokens", "4096"], stdout=log, stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, timeout_s=120)
        outcomes: list[Outcome] = []
        sending: dict[int, float] = {}
        stop = threading.Event()
        threads = [threading.Thread(target=trainer, args=(base_url, outcomes, stop, sending)) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        signal_when_most_are_mid_request(sending)
        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        ready = httpx.get(f"{base_url}/ready", timeout=5)
        assert ready.status_code == 503, "/ready must turn 503 as soon as the drain starts"
        for t in threads:
            t.join(timeout=90)
        stop.set()
        exit_code = server.wait(timeout=90)
    finally:
        if server.poll() is None:
            server.kill()
        log.close()
    server_log = (tmp_path / "server.log").read_text()
    assert exit_code == 0, server_log[-3000:]
    assert "drained" in server_log

    before = [o for o in outcomes if o.sent_at < signalled - 0.2]  # surely accepted before the signal
    in_flight = [o for o in before if o.done_at > signalled]
    assert len(in_flight) >= CLIENTS // 2, f"only {len(in_flight)} requests were in flight at SIGTERM"
    assert all(o.status == 200 for o in before), [o for o in before if o.status != 200][:3]
    after = [o for o in outcomes if o.sent_at >= signalled - 0.2]
    # Requests racing the signal or sent after it were never accepted: an answer (200, or 503 not_ready), or a refused
    # connection once the drained server has closed its socket. Never a read error or a reset: during the drain every
    # response says Connection: close and only keep-alive connections idle for 0.5 s are closed (api.serving).
    gone = ("ConnectError",)
    assert all(o.status in (200, 503) or o.error in gone for o in after), \
        [o for o in after if o.status not in (200, 503)][:3]
    assert all("not_ready" in o.error for o in after if o.status == 503)
    assert any(o.status == 503 for o in after), "requests arriving while draining must get 503"
