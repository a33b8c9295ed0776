"""Drive a server on 127.0.0.1 with a bounded number of concurrent clients and measure what they see."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class LoadResult:
    requests: int
    items: int
    tokens: int
    seconds: float
    latencies: list[float]
    server_inference_ms: list[float]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds

    def overhead_p50_ms(self) -> float:
        """Median over requests of (latency seen by the client - the server's x-inference-time): HTTP, queue,
        tokenization and serialization on top of the forward."""
        extra = sorted(1000 * lat - inf for lat, inf in zip(self.latencies, self.server_inference_ms))
        return extra[len(extra) // 2] if extra else float("nan")

    def latency_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _drive(
    base_url: str, route: str, bodies: Sequence[dict], concurrency: int, timeout_s: float,
    body_tokens: Sequence[int] | None,
) -> LoadResult:
    """``body_tokens`` counts tokens client-side for servers whose answers carry no usage (the peer)."""
    pending = list(reversed(list(enumerate(bodies))))
    latencies, inference_ms, tokens = [], [], 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits) as client:

        async def worker() -> None:
            nonlocal tokens
            while pending:
                index, body = pending.pop()
                started = time.perf_counter()
                response = await client.post(route, json=body)
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
                tokens += body_tokens[index] if body_tokens else response.json()["usage"]["total_tokens"]
                inference_ms.append(float(response.headers.get("x-inference-time", "nan")))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    items = sum(len(b.get("items") or b.get("query")) for b in bodies)
    return LoadResult(len(bodies), items, tokens, elapsed, latencies, inference_ms)


def run_load(
    base_url: str, route: str, bodies: Sequence[dict], concurrency: int, timeout_s: float = 600,
    body_tokens: Sequence[int] | None = None,
) -> LoadResult:
    return asyncio.run(_drive(base_url, route, bodies, concurrency, timeout_s, body_tokens))


def single_item_bodies(items: Sequence[dict], **options) -> list[dict]:
    return [{"items": [item], **options} for item in items]


@contextmanager
def served(model_dir: str, port: int, *flags: str):
    """`r3hf serve` in a subprocess on 127.0.0.1:port, stopped on exit."""
    cmd = [sys.executable, "-m", "r3hf_server", "serve", "--model", model_dir, "--port", str(port),
           "--log-level", "warning", *flags]
    with server_process(cmd, port, lambda base: httpx.get(f"{base}/ready", timeout=2)) as base_url:
        yield base_url


@contextmanager
def server_process(cmd: list[str], port: int, probe: Callable[[str], httpx.Response], extra_env: dict | None = None):
    """Start ``cmd``, wait until ``probe(base_url)`` answers 200, stop it on exit."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **(extra_env or {})}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, proc, probe)
        yield base_url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _wait_ready(base_url: str, proc: subprocess.Popen, probe, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-3000:] if proc.stderr else ''}")
        try:
            if probe(base_url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base_url} not ready after {timeout_s}s")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
