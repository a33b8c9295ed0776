"""HEAD on every GET route (FastAPI registers GET only): probes and ``curl -I`` get the GET's status and headers.

The app sees a GET; uvicorn, which still holds the request as HEAD, sends the headers (Content-Length included)
and drops the body.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "HEAD":
            scope = {**scope, "method": "GET"}
        await self.app(scope, receive, send)
