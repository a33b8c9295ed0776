"""Stop working for a client that has gone away.

Starlette does not cancel a handler when its client disconnects, so a trainer that timed out and retried would have
its abandoned items scored anyway, doubling the load exactly when the server is already behind. Racing the work
against the connection's disconnect message cancels the engine call; the engine cancels the items' futures and the
batcher skips them before the forward (counted as r3hf_items_skipped_total).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import FastAPI, Request, Response

T = TypeVar("T")

# nginx's code for "client closed request": never seen by the client, but it keeps these apart from real errors.
CLIENT_CLOSED_REQUEST = 499


class ClientDisconnected(Exception):
    pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise ClientDisconnected."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    await asyncio.gather(task, return_exceptions=True)  # let the engine release the items' futures
    request.app.state.metrics.client_disconnects.inc()
    raise ClientDisconnected


async def _disconnect(request: Request) -> None:
    # The body has been read by the time a handler runs, so the next message is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


def install_disconnect_handler(app: FastAPI) -> None:
    @app.exception_handler(ClientDisconnected)
    async def _client_disconnected(request: Request, exc: ClientDisconnected) -> Response:
        return Response(status_code=CLIENT_CLOSED_REQUEST, headers={"x-error-type": "client_disconnected"})
