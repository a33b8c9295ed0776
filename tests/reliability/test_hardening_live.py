"""Hardening against a live `r3hf serve` process (fake runner) on 127.0.0.1, with the server's RSS sampled from /proc
and /health polled meanwhile: hostile bodies of 2, 10 and 60 MiB, eight concurrent 60 MiB bodies, 60 slow or silent
connections under a 64-descriptor limit, malformed HTTP, and an upload cut by the end of a drain.

The servers and hostile bodies come from load_tests/hardening_tools.py, the same helpers load_tests/hardening.py
uses to print the before/after table. Every case is bounded in count and time."""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "load_tests"))
from hardening_tools import (  # noqa: E402
    HOST, HOSTILE_KINDS, MIB, Watch, hostile_body, note_closed, open_slow_socket, post_raw, server_process,
    tiny_messages_body, trickle, valid_body,
)

pytestmark = pytest.mark.slow

RSS_CAP_MIB = 2048  # a server growing past this is killed (the machine is shared) and the case fails


@pytest.fixture(scope="module")
def hostile_server():
    with server_process(runner="fake") as server:
        # One ordinary request first: the first one also pays for lazy imports and thread start-up.
        post_raw(server.base_url, "/score", b'{"items":[{"prompt":"a","response":"b"}]}', timeout_s=30)
        yield server


@pytest.mark.parametrize("mib", [2, 10, 60])
@pytest.mark.parametrize("kind", HOSTILE_KINDS)
def test_a_hostile_body_is_answered_4xx_fast_with_bounded_memory_and_health_stays_quick(hostile_server, kind, mib):
    path, body = hostile_body(kind, mib)
    with Watch(hostile_server, RSS_CAP_MIB) as watch:
        status, seconds, error, response = post_raw(hostile_server.base_url, path, body, timeout_s=30)
        time.sleep(0.2)  # one more sample after the answer
    print(f"{kind} {mib} MiB: {status or error} in {seconds:.2f} s, RSS +{watch.growth_mib:.0f} MiB, "
          f"/health max {watch.health_max_s:.3f} s")
    assert status in (413, 422) and response.json()["error_type"] in ("too_large", "invalid_request")
    assert seconds <= (1.0 if mib <= 2 else 3.0)  # includes sending the body over loopback
    assert watch.growth_mib <= 3 * len(body) / MIB
    assert watch.health_max_s < 0.5


def test_eight_concurrent_60_mib_bodies_stay_within_the_byte_budget_and_health_stays_quick():
    budget_mib, margin_mib = 128, 384
    body = valid_body(60)  # 4,096 items of 15 K characters
    flags = ("--max-inflight-body-bytes", str(budget_mib * MIB), "--request-timeout-s", "3")
    with server_process(*flags, runner="fake") as server, Watch(server, RSS_CAP_MIB) as watch:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: post_raw(server.base_url, "/score", body, timeout_s=60), range(8)))
        time.sleep(0.5)
    statuses = sorted(status or error for status, _, error, _ in answers)
    print(f"8 x 60 MiB: {statuses}, RSS +{watch.growth_mib:.0f} MiB, /health max {watch.health_max_s:.3f} s")
    refused = [r for status, _, _, r in answers if status == 429]
    assert refused and all(1 <= int(r.headers["retry-after"]) <= 30 for r in refused)
    assert set(statuses) <= {200, 429, 504}
    assert watch.growth_mib <= budget_mib + margin_mib
    # Measured 0.11-0.15 s on an idle 2-core machine (1.5 s when five other jobs shared it).
    assert watch.health_max_s < 0.5


def test_eight_concurrent_bodies_of_empty_chat_messages_are_held_at_their_parsed_size():
    # Each 4 MiB body is ~155 K messages, ~100 MB once parsed: the 128 MiB budget holds one of them at a time, not
    # all eight (before: three admitted, RSS +837 MiB, /health 4.2 s).
    budget_mib, margin_mib = 128, 256
    body = tiny_messages_body(4)
    with server_process("--max-inflight-body-bytes", str(budget_mib * MIB), runner="fake") as server, \
            Watch(server, RSS_CAP_MIB) as watch:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: post_raw(server.base_url, "/score", body, timeout_s=60), range(8)))
        time.sleep(0.5)
    statuses = sorted(status or error for status, _, error, _ in answers)
    print(f"8 x 4 MiB of chat messages: {statuses}, RSS +{watch.growth_mib:.0f} MiB, /health max "
          f"{watch.health_max_s:.3f} s")
    assert set(statuses) <= {200, 429} and 200 in statuses and 429 in statuses
    assert all(1 <= int(r.headers["retry-after"]) <= 30 for status, _, _, r in answers if status == 429)
    assert watch.growth_mib <= budget_mib + margin_mib
    assert watch.health_max_s < 0.5


def test_sixty_slow_or_silent_connections_do_not_lock_out_a_client_and_are_closed_within_the_timeouts():
    flags = ("--header-timeout-s", "2", "--body-timeout-s", "2", "--min-body-bytes-per-s", "1000")
    with server_process(*flags, runner="fake", nofile=64) as server:
        sockets = [s for kind, n in (("silent", 30), ("slow_headers", 15), ("slow_body", 15)) for _ in range(n)
                   if (s := open_slow_socket(server.port, kind)) is not None]
        opened = time.monotonic()
        status, seconds, error, _ = post_raw(server.base_url, "/score", b'{"items":[{"prompt":"a","response":"b"}]}',
                                             timeout_s=10)
        while time.monotonic() - opened < 8 and any(s.closed_at is None for s in sockets):
            trickle(sockets)
            note_closed(sockets)
            time.sleep(0.25)
        open_after = sum(s.closed_at is None for s in sockets)
        last = max((s.closed_at - opened for s in sockets if s.closed_at), default=0.0)
        for s in sockets:
            s.sock.close()
        log = server.log_text()
    print(f"{len(sockets)} slow sockets: client {status or error} in {seconds:.2f} s; all closed after {last:.1f} s")
    assert len(sockets) == 60 and status == 200 and seconds < 5.0  # before: locked out (ReadTimeout after 10 s)
    assert open_after == 0 and last <= 2 + 2 + 1.5  # header or body timeout, plus the pace check and polling
    assert log.count("out of system resource") <= 1


def test_malformed_http_gets_a_json_400():
    with server_process(runner="fake") as server, socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.sendall(b"GARBAGE / HTTP/9.9\r\n\x00\r\n\r\n")
        reply = sock.recv(4096).decode(errors="replace")
    head, _, body = reply.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 400") and "content-type: application/json" in head.lower()
    assert json.loads(body)["error_type"] == "malformed_request"


def test_an_upload_still_running_when_the_drain_ends_gets_a_503_not_ready_json():
    with server_process("--drain-timeout-s", "1", runner="fake") as server:
        sock = socket.create_connection((HOST, server.port), timeout=10)
        sock.sendall(b"POST /score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 1000\r\n\r\n{\"items\":")
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        reply = b""
        while not reply.endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        sock.close()
        exit_code = server.process.wait(timeout=30)
    head, _, body = reply.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 503") and "connection: close" in head.lower(), head
    assert json.loads(body)["error_type"] == "not_ready"
    assert exit_code == 0
