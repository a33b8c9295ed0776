"""Take a request body in at a bounded cost: size, content type, an in-flight byte budget, upload pace, then a
bounded parse off the event loop — before FastAPI or pydantic see anything.

In order, for a POST:

1. A declared ``Content-Length`` over ``--max-body-bytes`` → 413; a JSON route whose content type is missing or
   not JSON → 415 naming ``content-type: application/json``.
2. The body's bytes are reserved in the in-flight budget (``--max-inflight-body-bytes``) before a byte is read; past
   it → 429 with ``Retry-After``. A chunked body reserves as it arrives. The reservation is held until the answer,
   because the parsed body lives that long.
3. The body must keep coming: a gap longer than ``--body-timeout-s``, or an average pace under
   ``--min-body-bytes-per-s`` once that long has passed, → 408 and the connection closes. A drain that ends while
   the body is still arriving → 503 ``not_ready``.
4. The scoring routes' bodies are parsed in a worker thread by ``body_parsing.parse_body`` (bounded time and
   memory, at most a few errors); the route receives the finished model through ``PreparsedBodyRoute``.

Refusals made before the body is read carry ``Connection: close``: the unread rest must not be taken for the next
request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from r3hf_client.errors import ErrorType

from .body_parsing import PARSED_MODELS, BodyLimits, BodyRejected, build_request, decode_body
from .drain import Drain
from .errors import error_response
from .head import HeadAsGet

PARSED_BODY = "r3hf.parsed_body"
_POLL_S = 0.5  # how often a waiting upload looks at the drain and the pace
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_UNLOADED_MAX_IDS = 1 << 20


@dataclass(frozen=True)
class IntakeLimits:
    max_body_bytes: int
    max_inflight_body_bytes: int
    body_timeout_s: float
    min_body_bytes_per_s: float


class ByteBudget:
    """Bytes of request bodies held at once (being read, parsed, or held by a request in progress)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0

    def try_reserve(self, count: int) -> bool:
        if count and self.held + count > self.limit:
            return False
        self.held += count
        self.peak = max(self.peak, self.held)
        return True

    def release(self, count: int) -> None:
        self.held -= count


class _Refusal(Exception):
    def __init__(self, error_type: ErrorType, message: str, status_code: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.response = error_response(error_type, message, status_code, {"connection": "close", **(headers or {})})


class _Gone(Exception):
    """The client disconnected while sending its body: nobody is left to answer."""


class BodyIntake:
    def __init__(self, app: ASGIApp, *, limits: IntakeLimits, budget: ByteBudget, drain: Drain,
                 parse_limits: Callable[[], BodyLimits], retry_after_s: Callable[[], int]) -> None:
        self.app, self.limits, self.budget, self.drain = app, limits, budget, drain
        self.parse_limits = parse_limits
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        model = PreparsedBodyRoute.parsed_bodies.get(scope["path"])
        reserved = 0
        try:
            declared = _declared_length(scope)
            self._check_head(scope, model, declared)
            reserved = declared or 0
            if not self.budget.try_reserve(reserved):
                reserved = 0
                raise self._over_budget()
            raw, reserved = await self._read_body(receive, reserved)
            if model is not None:
                scope[PARSED_BODY], reserved = await self._parse(model, raw, reserved)
                raw = b""
            await self.app(scope, _replay(raw, receive), send)
        except _Refusal as refusal:
            await refusal.response(scope, receive, send)
        except BodyRejected as rejected:
            await error_response(rejected.error_type, rejected.message)(scope, receive, send)
        except _Gone:
            return
        finally:
            self.budget.release(reserved)

    def _check_head(self, scope: Scope, model: type[BaseModel] | None, declared: int | None) -> None:
        if declared is not None and declared > self.limits.max_body_bytes:
            raise self._too_large()
        if model is not None and not _is_json(_header(scope, b"content-type")):
            raise _Refusal(
                ErrorType.MALFORMED_REQUEST,
                "send the body as JSON with the header 'content-type: application/json' (curl: -H 'content-type: "
                "application/json', or --json)", status_code=415,
            )

    def _too_large(self) -> _Refusal:
        return _Refusal(ErrorType.TOO_LARGE, f"the request body exceeds the limit of {self.limits.max_body_bytes} "
                                             "bytes (--max-body-bytes); split it")

    def _over_budget(self) -> _Refusal:
        retry_after = self.retry_after_s()
        return _Refusal(
            ErrorType.OVERLOADED,
            f"the server is reading as many request bodies as it may ({self.budget.held} of {self.budget.limit} "
            f"bytes, --max-inflight-body-bytes); retry after {retry_after} s", headers={"retry-after": str(retry_after)},
        )

    async def _parse(self, model: type[BaseModel], raw: bytes, reserved: int) -> tuple[BaseModel, int]:
        """The request model, after holding its parsed form's cost in the budget (the body's bytes are held already)."""
        limits = self.parse_limits()
        decoded = await asyncio.to_thread(decode_body, model, raw, limits)
        extra = max(0, decoded.parsed_cost - reserved)
        if not self.budget.try_reserve(extra):
            raise self._over_budget()
        try:
            return await asyncio.to_thread(build_request, decoded, limits), reserved + extra
        except BaseException:
            self.budget.release(extra)  # the caller releases only what it was told it holds
            raise

    async def _read_body(self, receive: Receive, reserved: int) -> tuple[bytes, int]:
        """The whole body, under the size limit, the budget (chunked bodies reserve as they come) and the pace."""
        chunks: list[bytes] = []
        received, started, last_data = 0, time.monotonic(), time.monotonic()
        while True:
            message = await self._next_message(receive, received, started, last_data)
            if message["type"] == "http.disconnect":
                raise _Gone
            chunk = message.get("body", b"")
            if chunk:
                received += len(chunk)
                last_data = time.monotonic()
                if received > self.limits.max_body_bytes:
                    raise self._too_large()
                if received > reserved:
                    if not self.budget.try_reserve(received - reserved):
                        raise self._over_budget()
                    reserved = received
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), reserved

    async def _next_message(self, receive: Receive, received: int, started: float, last_data: float) -> Message:
        limits = self.limits
        while True:
            # Checked before every wait, not only after a quiet poll: a client trickling a byte more often than the
            # poll interval must still meet the average rate.
            now = time.monotonic()
            if self.drain.uploads_cut:
                raise _Refusal(ErrorType.NOT_READY, "the server shut down while the request body was still arriving; "
                                                    "retry (another replica will answer)")
            slow = now - started > limits.body_timeout_s and received < limits.min_body_bytes_per_s * (now - started)
            if now - last_data > limits.body_timeout_s or slow:
                raise _Refusal(
                    ErrorType.TIMEOUT,
                    f"the request body arrived too slowly ({received} bytes in {now - started:.0f} s; the server "
                    f"needs data at least every {limits.body_timeout_s:g} s (--body-timeout-s) and "
                    f"{limits.min_body_bytes_per_s:g} bytes/s on average (--min-body-bytes-per-s))", status_code=408,
                )
            try:
                return await asyncio.wait_for(receive(), _POLL_S)
            except asyncio.TimeoutError:
                pass


def _replay(raw: bytes, receive: Receive) -> Receive:
    """The body already read, once, then the real channel (which the disconnect watcher listens to)."""
    pending = [{"type": "http.request", "body": raw, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


class PreparsedBodyRoute(APIRoute):
    """Hands the route the model ``BodyIntake`` parsed instead of letting FastAPI parse the body again.

    Only routes of this class get their body parsed by the intake (a route of another class would find its body
    gone); each records its path and body model here as it is created.
    """

    parsed_bodies: dict[str, type[BaseModel]] = {}

    def __init__(self, path: str, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(path, *args, **kwargs)
        model = getattr(getattr(self.body_field, "field_info", None), "annotation", None)
        if model in PARSED_MODELS:
            PreparsedBodyRoute.parsed_bodies[self.path] = model

    def get_route_handler(self):  # type: ignore[no-untyped-def]
        handler = super().get_route_handler()

        async def with_parsed_body(request: Request) -> Response:
            parsed = request.scope.get(PARSED_BODY)
            if parsed is not None:
                request = _ParsedRequest(request.scope, request.receive, parsed)
            return await handler(request)

        return with_parsed_body


class _ParsedRequest(Request):
    def __init__(self, scope: Scope, receive: Receive, parsed: BaseModel) -> None:
        super().__init__(scope, receive)
        self._parsed = parsed

    async def body(self) -> bytes:
        return b"{}"  # FastAPI reads the body only to see that there is one; json() gives the parsed model

    async def json(self) -> BaseModel:  # type: ignore[override]
        return self._parsed


def _declared_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def install_intake(app, settings) -> None:  # type: ignore[no-untyped-def]
    """Add BodyIntake (and HEAD for GET routes) to ``app``; the byte budget is published as app.state.body_budget."""
    budget = ByteBudget(settings.max_inflight_body_bytes)
    app.state.body_budget = budget

    def engine():  # type: ignore[no-untyped-def]
        return getattr(app.state, "engine", None)

    def parse_limits() -> BodyLimits:
        # Before the model is loaded nothing is parsed (503); the per-item bound is the engine's own.
        max_chars = getattr(engine(), "max_item_chars", None) or settings.max_item_chars or _UNLOADED_MAX_IDS
        return BodyLimits(max_items=settings.max_items_per_request, max_item_size=max_chars,
                          max_parsed_bytes=settings.max_inflight_body_bytes)

    def retry_after_s() -> int:
        retry_after = getattr(engine(), "retry_after_s", None)
        return retry_after() if retry_after is not None else 1

    limits = IntakeLimits(
        max_body_bytes=settings.max_body_bytes, max_inflight_body_bytes=settings.max_inflight_body_bytes,
        body_timeout_s=settings.body_timeout_s, min_body_bytes_per_s=settings.min_body_bytes_per_s,
    )
    app.add_middleware(BodyIntake, limits=limits, budget=budget, drain=app.state.drain, parse_limits=parse_limits,
                       retry_after_s=retry_after_s)
    app.add_middleware(HeadAsGet)
