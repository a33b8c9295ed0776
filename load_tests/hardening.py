"""Reproduce the hardening review's cases against `r3hf serve` on 127.0.0.1 and print one table (and JSON).

    .venv/bin/python load_tests/hardening.py                              # every case, 2 and 10 MiB bodies
    .venv/bin/python load_tests/hardening.py --sizes 2,10,60 --json out.json
    .venv/bin/python load_tests/hardening.py --cases hostile,slow_conns

Each row: the case, what the client got, the time to that answer, the server's RSS growth (peak minus the value at
the start of the case, sampled every 20 ms from /proc) and the slowest /health answer meanwhile. A case whose RSS
growth passes --rss-cap-mib has its server killed (the machine is shared) and reads "killed". Bounded: every
request has a timeout, every case a fixed count of clients, and servers are killed at the end.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from hardening_tools import (
    HOST, HOSTILE_KINDS, MIB, Watch, hostile_body, note_closed, open_slow_socket, post_raw, server_process,
    tiny_messages_body, trickle, valid_body,
)

ONE_ITEM = {"items": [{"prompt": "How are you?", "response": " Fine, thanks."}]}


def row(case: str, outcome: str, seconds: float | None = None, watch: Watch | None = None, **extra) -> dict:
    result = {"case": case, "outcome": outcome, "seconds": None if seconds is None else round(seconds, 3)}
    if watch is not None:
        result.update(rss_growth_mib=round(watch.growth_mib, 1), health_max_s=round(watch.health_max_s, 3),
                      killed=watch.killed)
    result.update(extra)
    return result


def hostile(args: argparse.Namespace) -> list[dict]:
    """One server (the fake runner: all of this happens before any runner) per size, restarted if a case kills it."""
    rows = []
    for mib in args.sizes:
        kinds = list(args.kinds)
        while kinds:
            with server_process(*args.flags, runner="fake") as server:
                answered = True
                while kinds and answered and server.process.poll() is None:
                    path, body = hostile_body(kinds[0], mib)
                    with Watch(server, args.rss_cap_mib) as watch:
                        status, seconds, error, _ = post_raw(server.base_url, path, body, timeout_s=args.timeout_s)
                        time.sleep(0.2)  # one more RSS sample after the answer
                    answered = status is not None  # a server still busy with it would skew the next case
                    rows.append(row(f"hostile {kinds.pop(0)} {mib} MiB", str(status or error), seconds, watch,
                                    body_mib=round(len(body) / MIB, 1)))
                    print(rows[-1], file=sys.stderr, flush=True)
    return rows


def concurrent(args: argparse.Namespace) -> list[dict]:
    mib = max(args.sizes)
    body = valid_body(mib)
    with server_process(*args.flags) as server, Watch(server, args.rss_cap_mib) as watch:
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: post_raw(server.base_url, "/score", body, timeout_s=20), range(8)))
        seconds = time.perf_counter() - started
    statuses = sorted(str(status or error) for status, _, error, _ in results)
    return [row(f"8 concurrent valid {mib} MiB bodies (20 s client timeout)", ",".join(statuses), seconds, watch)]


def tiny_messages(args: argparse.Namespace) -> list[dict]:
    """Valid bodies whose parsed form is ~20x their bytes (empty chat messages): the budget counts the parsed form."""
    body = tiny_messages_body(4)
    with server_process(*args.flags, runner="fake") as server, Watch(server, args.rss_cap_mib) as watch:
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: post_raw(server.base_url, "/score", body, timeout_s=20), range(8)))
        seconds = time.perf_counter() - started
    statuses = sorted(str(status or error) for status, _, error, _ in results)
    return [row("8 concurrent valid 4 MiB bodies of empty chat messages", ",".join(statuses), seconds, watch)]


def abandoned(args: argparse.Namespace) -> list[dict]:
    mib = max(args.sizes)
    body = valid_body(mib)
    with server_process(*args.flags) as server, Watch(server, args.rss_cap_mib) as watch:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: post_raw(server.base_url, "/score", body, timeout_s=3), range(2)))
        status, seconds, error, response = post_raw(server.base_url, "/score", json.dumps(ONE_ITEM).encode(),
                                                    timeout_s=120)
        tokenize_ms = response.headers.get("x-tokenization-time") if response is not None else None
    return [row(f"1 item after two {mib} MiB requests dropped at 3 s", str(status or error), seconds, watch,
                x_tokenization_ms=tokenize_ms)]


def _single_item_latencies(base_url: str, samples: int, while_running: threading.Thread | None = None) -> list[float]:
    times = []
    with httpx.Client(base_url=base_url, timeout=120) as client:
        for _ in range(samples):
            if while_running is not None and not while_running.is_alive():
                break
            started = time.perf_counter()
            client.post("/score", json=ONE_ITEM).raise_for_status()
            times.append(time.perf_counter() - started)
    return times


def fairness(args: argparse.Namespace) -> list[dict]:
    """Single items sent one after another while one 1,024-item request (about 90 tokens an item) is served."""
    rows = []
    text = "Once upon a time there was a tiny reward model that scored every token it was shown. " * 4
    items = [{"prompt": f"Story {k}: ", "response": text} for k in range(1024)]
    with server_process(*args.flags) as server:
        idle = statistics.median(_single_item_latencies(server.base_url, 20))
        rows.append(row("single item, idle: p50", "200", idle))
        for route, extra in (("/score", {}), ("/token_rewards", {"redistribution": "attention"})):
            body = json.dumps({"items": items, **extra}).encode()
            big_answer: list = []
            big = threading.Thread(target=lambda: big_answer.append(post_raw(server.base_url, route, body, 600)))
            big_started = time.perf_counter()
            big.start()
            time.sleep(0.3)  # the big request is parsed and being tokenized
            busy = _single_item_latencies(server.base_url, 200, while_running=big)
            big.join()
            p50 = statistics.median(busy) if busy else float("nan")
            rows.append(row(f"single item beside 1,024 items on {route} {extra or ''}: p50", "200", p50,
                            idle_ratio=round(p50 / idle, 1), samples=len(busy), max_s=round(max(busy, default=0), 3),
                            big_request_s=round(time.perf_counter() - big_started, 1),
                            big_status=big_answer[0][0] if big_answer else None))
    return rows


def slow_conns(args: argparse.Namespace) -> list[dict]:
    counts = {"silent": 30, "slow_headers": 15, "slow_body": 15}
    with server_process(*args.flags, runner="fake", nofile=64) as server:
        sockets = [s for kind, n in counts.items() for _ in range(n)
                   if (s := open_slow_socket(server.port, kind)) is not None]
        opened = time.monotonic()
        time.sleep(0.5)
        status, seconds, error, _ = post_raw(server.base_url, "/score", json.dumps(ONE_ITEM).encode(), timeout_s=10)
        deadline = opened + args.slow_window_s
        while time.monotonic() < deadline and any(s.closed_at is None for s in sockets):
            trickle(sockets)
            note_closed(sockets)
            time.sleep(1.0)
        still_open = sum(s.closed_at is None for s in sockets)
        last_close = max((s.closed_at - opened for s in sockets if s.closed_at), default=None)
        for s in sockets:
            s.sock.close()
        log_lines = server.log_text().count("out of system resource")
    return [row(f"real request beside {len(sockets)} slow/silent connections (64 fds)", str(status or error),
                seconds, still_open_after_s=f"{still_open} after {args.slow_window_s:g} s",
                last_closed_s=None if last_close is None else round(last_close, 1), accept_error_lines=log_lines)]


def _start_and_wait(flags: list[str], env: dict | None = None, timeout_s: float = 120) -> tuple[str, float, str]:
    """Start r3hf serve; (exit code or 'serving', seconds until it exited or was ready, last stderr line)."""
    try:
        with server_process(*flags, env=env) as server:
            code = server.process.poll()
            tail = server.log_text().strip().splitlines()[-1:] if code is not None else []
            return (str(code) if code is not None else "serving"), 0.0, " ".join(tail)[:160]
    except TimeoutError:
        return "timeout", timeout_s, ""


def keys(args: argparse.Namespace) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp, "keys")
        empty.write_text("# rotated out\n\n")
        for label, flags, env in (
            ("keys file with comments only", ["--api-keys-file", str(empty)], None),
            ("R3HF_API_KEYS=' , '", [], {"R3HF_API_KEYS": " , "}),
            ("missing keys file", ["--api-keys-file", str(Path(tmp, "nope"))], None),
        ):
            started = time.perf_counter()
            outcome, _, tail = _start_and_wait([*args.flags, *flags], env)
            rows.append(row(f"start with {label}", outcome, time.perf_counter() - started, message=tail))
        with server_process(*args.flags, env={"R3HF_API_KEYS": "schlüssel"}) as server:
            if server.process.poll() is not None:
                rows.append(row("non-ASCII key", f"refused at start ({server.process.returncode})"))
            else:
                bearer = httpx.get(server.base_url + "/info", headers={"authorization": "Bearer schlüssel".encode()})
                basic = httpx.get(server.base_url + "/info", auth=("u", "schlüssel"))
                rows.append(row("non-ASCII key: Bearer / Basic", f"{bearer.status_code} / {basic.status_code}"))
    return rows


def drain(args: argparse.Namespace) -> list[dict]:
    outcomes: list[str] = []
    items = {"items": [{"prompt": "Hi", "response": f" Hello there, friend number {k}." * 3} for k in range(16)]}

    def trainer(base_url: str, stop: threading.Event) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            while not stop.is_set():
                try:
                    status = client.post("/score", json=items).status_code
                except httpx.ConnectError:
                    outcomes.append("refused")
                    return
                except httpx.HTTPError as exc:
                    outcomes.append(type(exc).__name__)
                    return
                outcomes.append(str(status))
                if status != 200:
                    return

    with server_process(*args.flags, "--drain-timeout-s", "20") as server:
        stop = threading.Event()
        threads = [threading.Thread(target=trainer, args=(server.base_url, stop)) for _ in range(32)]
        for t in threads:
            t.start()
        time.sleep(3)
        signalled = time.perf_counter()
        server.process.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=60)
        stop.set()
        code = server.process.wait(timeout=60)
        seconds = time.perf_counter() - signalled
    kinds = {k: outcomes.count(k) for k in sorted(set(outcomes))}
    return [row("32 clients + SIGTERM", json.dumps(kinds), seconds, exit_code=code)]


def friction(args: argparse.Namespace) -> list[dict]:
    rows = []
    outcome, _, tail = _start_and_wait([*args.flags, "--max-queue-items", "64"])
    rows.append(row("start with --max-queue-items 64", outcome, message=tail))
    with server_process(*args.flags) as server:
        body = json.dumps(ONE_ITEM).encode()
        status, seconds, _, r = post_raw(server.base_url, "/score", body, content_type="application/x-www-form-urlencoded")
        rows.append(row("JSON object as a form (curl -d)", f"{status} {r.text[:90] if r is not None else ''}", seconds))
        rows.append(row("malformed HTTP", _malformed_http(server.port)))
        head = httpx.head(server.base_url + "/health")
        rows.append(row("HEAD /health", str(head.status_code)))
    with server_process(*args.flags, "--max-queue-items", "1024") as server:
        retry_after = _overload_retry_after(server.base_url)
        rows.append(row("Retry-After values under overload (queue of 1,024 items, 32 x 512 long items)",
                        ",".join(sorted(set(retry_after), key=int)) or "no 429"))
    return rows


def _malformed_http(port: int) -> str:
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(b"GARBAGE / HTTP/9.9\r\n\x00\r\n\r\n")
        reply = sock.recv(4096).decode(errors="replace")
    status = reply.split(" ", 2)[1] if reply.startswith("HTTP/") else "no answer"
    content_type = next((line.split(":", 1)[1].strip() for line in reply.split("\r\n")
                         if line.lower().startswith("content-type:")), "")
    return f"{status} {content_type}"


def _overload_retry_after(base_url: str) -> list[str]:
    """Retry-After is the items ahead of a refused request over the measured drain rate: one request first, so the
    rate is measured, then a burst that overfills the queue."""
    body = json.dumps({"items": [{"prompt": "Hi", "response": " A long answer about everything." * 40}] * 512})
    post_raw(base_url, "/score", body.encode(), 120)
    with ThreadPoolExecutor(32) as pool:
        responses = list(pool.map(lambda _: post_raw(base_url, "/score", body.encode(), 120)[3], range(32)))
    return [r.headers.get("retry-after", "") for r in responses if r is not None and r.status_code == 429]


CASES = {"hostile": hostile, "concurrent": concurrent, "tiny_messages": tiny_messages, "abandoned": abandoned,
         "fairness": fairness, "slow_conns": slow_conns, "keys": keys, "drain": drain, "friction": friction}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--sizes", default="2,10", help="hostile body sizes in MiB (60 at most)")
    parser.add_argument("--kinds", default=",".join(HOSTILE_KINDS), help="hostile bodies, comma-separated")
    parser.add_argument("--rss-cap-mib", type=float, default=3072, help="kill a server that grows more than this")
    parser.add_argument("--timeout-s", type=float, default=60, help="client timeout of one hostile request")
    parser.add_argument("--slow-window-s", type=float, default=40, help="how long slow connections are watched")
    parser.add_argument("--flags", default="", help="extra `r3hf serve` flags, space-separated")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    args.sizes = [min(60, int(s)) for s in args.sizes.split(",")]
    args.flags = args.flags.split()
    args.kinds = args.kinds.split(",")
    rows = []
    for name in args.cases.split(","):
        rows += CASES[name](args)
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def print_table(rows: list[dict]) -> None:
    print(f"| {'case':<62} | {'answer':<30} | {'s':>7} | {'RSS +MiB':>8} | {'/health max s':>13} | other")
    print("|" + "---|" * 6)
    for r in rows:
        other = {k: v for k, v in r.items() if k not in {"case", "outcome", "seconds", "rss_growth_mib",
                                                         "health_max_s"} and v not in (None, False, "")}
        growth = "killed" if r.get("killed") else r.get("rss_growth_mib", "")
        print(f"| {r['case']:<62} | {r['outcome'][:30]:<30} | {r['seconds'] if r['seconds'] is not None else '':>7} "
              f"| {growth:>8} | {r.get('health_max_s', ''):>13} | {json.dumps(other) if other else ''}")


if __name__ == "__main__":
    sys.exit(main())
