"""Scripted replicas behind ``httpx.MockTransport`` for the client's fast tests (no server, no sockets)."""

from __future__ import annotations

import json
import threading
import time

import httpx

_KIND = {429: "overloaded", 503: "not_ready", 422: "invalid_request", 502: "internal"}


class Replica:
    """A scripted server: answers ``failures`` first (status + headers, "drop" = refused, "lost" = the request is
    scored but the connection resets before the answer), then scores items as len(response).

    ``dead`` refuses every connection, /ready included; otherwise /ready answers 200. ``hosts_by_item`` records,
    for the first item of every request, which replicas it was sent to, in order (shared between replicas).
    """

    def __init__(self, fingerprint: str = "fp-a", failures=(), delay_s: float = 0.0, dead: bool = False,
                 hosts_by_item: dict | None = None) -> None:
        self.fingerprint, self.failures, self.delay_s, self.dead = fingerprint, list(failures), delay_s, dead
        self.requests: list[dict] = []
        self.probes = 0
        self.in_flight = self.max_in_flight = 0
        self.hosts_by_item = hosts_by_item if hosts_by_item is not None else {}
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.dead:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/ready":
            self.probes += 1
            return httpx.Response(200, json={"status": "ready"})
        body = json.loads(request.content) if request.content else {}
        if body.get("items"):
            self.hosts_by_item.setdefault(body["items"][0]["response"], []).append(request.url.host)
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            failure = self.failures.pop(0) if self.failures else None
        try:
            return self._answer(request, body, failure)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _answer(self, request: httpx.Request, body: dict, failure) -> httpx.Response:  # type: ignore[no-untyped-def]
        time.sleep(self.delay_s)
        if failure == "drop":
            raise httpx.ConnectError("connection refused", request=request)
        if failure == "lost":
            self.requests.append(body)  # the work was done; the answer never arrives
            raise httpx.ReadError("connection reset by peer", request=request)
        if failure is not None:
            status, headers = failure
            return httpx.Response(status, headers=headers, json={"error": "busy", "error_type": _KIND[status]})
        if request.url.path == "/info":
            return httpx.Response(200, json=self.info())
        self.requests.append(body)
        return httpx.Response(200, json=self.answer(request.url.path, body))

    def answer(self, path: str, body: dict) -> dict:
        results = [
            {"index": i, "score": float(len(item["response"])), "prompt_score": 0.0,
             "num_response_tokens": len(item["response"]), "truncated": False, "template_changed_response": False,
             **({"token_rewards": [1.0] * len(item["response"])} if path == "/token_rewards" else {})}
            for i, item in enumerate(body["items"])
        ]
        n = len(results)
        usage = {"num_items": n, "prompt_tokens": n, "response_tokens": n, "total_tokens": 2 * n}
        return {"model": "m", "fingerprint": self.fingerprint, "results": results, "usage": usage}

    def info(self) -> dict:
        return {"model": "m", "model_path": "m", "fingerprint": self.fingerprint, "architecture": "Fake",
                "dtype": "float32", "device": "cpu", "max_length": 64, "num_labels": 1, "label_index": 0,
                "score_normalization": None, "has_chat_template": False, "version": "0"}


def routed(replicas: dict[str, Replica]) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: replicas[request.url.host](request))


def items(n: int) -> list[dict]:
    return [{"prompt": "p", "response": "x" * (i + 1)} for i in range(n)]
