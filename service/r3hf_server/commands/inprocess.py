"""Serve the app inside this process and reach it through a synchronous httpx transport.

The CLI then talks to an in-process model through ``RewardClient`` exactly as it would to a server: same request
validation, same errors, same results; only the socket is missing. The app, its lifespan (model load, batch worker)
and every request run on one private event-loop thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


class InProcessTransport(httpx.BaseTransport):
    def __init__(self, app: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="r3hf-in-process", daemon=True)
        self._thread.start()
        self._asgi = httpx.ASGITransport(app=app)
        self._lifespan = app.router.lifespan_context(app)
        self._closed = False
        try:
            self._call(self._lifespan.__aenter__())  # loads the model; raises its refusal if it has one
        except BaseException:
            self._stop_loop()
            raise

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            inner = httpx.Request(request.method, request.url, headers=request.headers, content=request.read())
            response = await self._asgi.handle_async_request(inner)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content, request=request)

        return self._call(send())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._call(self._lifespan.__aexit__(None, None, None))
        finally:
            self._stop_loop()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
