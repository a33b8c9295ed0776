"""Helpers for load_tests/hardening.py: a server process on 127.0.0.1, an RSS sampler with a kill cap, a /health
poller, hostile and valid bodies, and raw-socket clients. Nothing here talks to any host but 127.0.0.1."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from readiness import free_port, poll_ready  # noqa: E402  (shared with the tests and the experiments)

HOST = "127.0.0.1"
MIB = 1024 * 1024


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Server:
    process: subprocess.Popen
    base_url: str
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def server_process(*flags: str, runner: str = "hf", nofile: int | None = None, env: dict | None = None):
    """`r3hf serve` on 127.0.0.1 with ``flags``; yields a Server once /ready answers 200 (or the process exited)."""
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="r3hf-hardening-", suffix=".log")[1])
    command = [sys.executable, "-m", "r3hf_server", "serve", "--host", HOST, "--port", str(port),
               "--runner", runner, "--log-level", "warning", *flags]

    def limit_files() -> None:
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit_files,
                                   env={**os.environ, **(env or {})})
    server = Server(process, f"http://{HOST}:{port}", port, log_path)
    try:
        wait_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        log_path.unlink(missing_ok=True)


def wait_ready(server: Server, timeout_s: float = 600) -> None:
    """Returns once /ready answers, or once the process has exited (the caller reads its exit code and log)."""
    poll_ready(server.base_url, lambda: server.process.poll() is None, timeout_s)


class Watch:
    """Samples the server's RSS and /health latency on threads while a case runs; kills the server past a cap."""

    def __init__(self, server: Server, rss_cap_mib: float, period_s: float = 0.02) -> None:
        self.server, self.rss_cap_mib, self.period_s = server, rss_cap_mib, period_s
        self.baseline = rss_mib(server.pid)
        self.peak = self.baseline
        self.health_max_s = 0.0
        self.health_failures = 0
        self.killed = False
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._sample_rss, daemon=True)]
        self._poller: subprocess.Popen | None = None

    def __enter__(self) -> "Watch":
        # /health is polled from a separate process: a poller thread here would share the GIL with the threads
        # sending the bodies, and would measure this process's own contention instead of the server's.
        self._poller = subprocess.Popen([sys.executable, "-c", _HEALTH_POLLER, self.server.base_url],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._poller.stdout.readline()  # its first answer (connection set-up included) only says it is running
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        self._poller.terminate()
        for line in self._poller.communicate(timeout=30)[0].split():
            self._record(line)

    def _record(self, line: str) -> None:
        if not line.strip():
            return
        seconds = float(line)
        if seconds < 0:
            self.health_failures += 1
        self.health_max_s = max(self.health_max_s, abs(seconds))

    @property
    def growth_mib(self) -> float:
        return self.peak - self.baseline

    def _sample_rss(self) -> None:
        while not self._stop.is_set():
            rss = rss_mib(self.server.pid)
            self.peak = max(self.peak, rss)
            if rss - self.baseline > self.rss_cap_mib and not self.killed:
                self.killed = True  # protect the shared machine: record "over the cap" and stop the server
                self.server.process.send_signal(signal.SIGKILL)
            time.sleep(self.period_s)

_HEALTH_POLLER = """
import sys, time, httpx
with httpx.Client(base_url=sys.argv[1], timeout=60) as client:
    while True:
        started = time.perf_counter()
        try:
            client.get("/health")
            sign = 1
        except httpx.HTTPError:
            sign = -1
        print(sign * (time.perf_counter() - started), flush=True)
        time.sleep(0.05)
"""


def hostile_body(kind: str, mib: int) -> tuple[str, bytes]:
    """The outside review's hostile bodies, ``mib`` MiB each: (route, body)."""
    n = mib * MIB
    if kind == "items_ints":
        return "/score", b'{"items":[' + b"1," * (n // 2) + b"1]}"
    if kind == "query_ints":
        return "/get_reward", b'{"query":[' + b"1," * (n // 2) + b"1]}"
    if kind == "prompt_ids_strings":
        return "/score", b'{"items":[{"prompt_ids":[' + b'"a",' * (n // 4) + b'"a"],"response_ids":[1]}]}'
    if kind == "unknown_keys":
        keys = b",".join(b'"k%07d":0' % i for i in range(n // 13))  # stays under the size
        return "/score", b'{"items":[{"prompt":"a","response":"b",' + keys + b"}]}"
    if kind == "items_over_cap":
        item = b'{"prompt":"","response":"a"},'
        return "/score", b'{"items":[' + item * (n // len(item)) + b'{"prompt":"","response":"a"}]}'
    if kind == "chat_messages":  # valid-typed elements msgspec builds one by one: each 26 bytes, ~540 once parsed
        return "/score", b'{"items":[' + tiny_messages_item(n) + b"]}"
    raise ValueError(kind)


HOSTILE_KINDS = ("items_ints", "query_ints", "prompt_ids_strings", "unknown_keys", "items_over_cap", "chat_messages")
_TINY_MESSAGE = b'{"role":"u","content":""}'


def tiny_messages_item(size: int) -> bytes:
    """One chat item of about ``size`` bytes made of empty messages."""
    count = max(1, size // (len(_TINY_MESSAGE) + 1))
    return b'{"messages":[' + b",".join([_TINY_MESSAGE] * count) + b',{"role":"assistant","content":"a"}]}'


def tiny_messages_body(mib: float, per_item: int = 64) -> bytes:
    """A valid /score body of about ``mib`` MiB: items of ``per_item`` empty messages each, each item far under the
    per-item size, so only the request's parsed size can refuse it."""
    item = tiny_messages_item(per_item * (len(_TINY_MESSAGE) + 1))
    count = max(1, int(mib * MIB) // (len(item) + 1))
    return b'{"items":[' + b",".join([item] * count) + b"]}"


def valid_body(mib: int, items: int = 4096) -> bytes:
    """A valid /score body of about ``mib`` MiB: ``items`` text items whose long prompts are truncated on the left."""
    per_item = max(1, (mib * MIB) // items - 40)
    words = ("lorem ipsum dolor sit amet " * (per_item // 27 + 1))[:per_item]
    body = {"truncation": "left", "items": [{"prompt": words, "response": " ok"} for _ in range(items)]}
    return json.dumps(body).encode()


def post_raw(base_url: str, path: str, body: bytes, timeout_s: float = 120, content_type: str = "application/json"):
    """(status or None, seconds, error name)."""
    started = time.perf_counter()
    try:
        r = httpx.post(base_url + path, content=body, headers={"content-type": content_type}, timeout=timeout_s)
        return r.status_code, time.perf_counter() - started, "", r
    except httpx.HTTPError as exc:
        return None, time.perf_counter() - started, type(exc).__name__, None


@dataclass
class SlowSocket:
    """A raw connection that is silent, sends headers slowly, or sends a body slowly."""

    kind: str
    sock: socket.socket = field(repr=False)
    closed_at: float | None = None


def open_slow_socket(port: int, kind: str) -> SlowSocket | None:
    sock = socket.socket()
    sock.settimeout(2)
    try:
        sock.connect((HOST, port))
    except OSError:
        sock.close()
        return None
    if kind == "slow_body":
        sock.sendall(b"POST /score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{")
    elif kind == "slow_headers":
        sock.sendall(b"POST /score HTTP/1.1\r\n")
    sock.setblocking(False)
    return SlowSocket(kind, sock)


def trickle(sockets: list[SlowSocket]) -> None:
    """One byte more on every slow socket (a header line or body byte), as a slowloris client would."""
    for s in sockets:
        if s.closed_at is not None or s.kind == "silent":
            continue
        try:
            s.sock.send(b"x" if s.kind == "slow_body" else b"x-a: b\r\n")
        except OSError:
            s.closed_at = s.closed_at or time.monotonic()


def note_closed(sockets: list[SlowSocket]) -> None:
    for s in sockets:
        if s.closed_at is not None:
            continue
        try:
            data = s.sock.recv(65536)
            if data == b"" or data:  # EOF, or the server answered (408/503) and will close
                s.closed_at = time.monotonic() if data == b"" else None
                if data:
                    _drain_until_closed(s)
        except BlockingIOError:
            pass
        except OSError:
            s.closed_at = time.monotonic()


def _drain_until_closed(s: SlowSocket) -> None:
    try:
        while s.sock.recv(65536):
            pass
        s.closed_at = time.monotonic()
    except BlockingIOError:
        pass
    except OSError:
        s.closed_at = time.monotonic()
