"""The app factory: builds the engine in the lifespan, installs routes, error mapping and request bookkeeping."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from r3hf_client.errors import ErrorType

from .. import __version__
from ..engine import RewardEngine, Runner
from ..settings import Settings
from .adapters import router as trainer_adapters_router
from .auth import ApiKeyAuth, PublicPaths, load_api_keys
from .disconnect import install_disconnect_handler
from .drain import Drain
from .errors import install_error_handlers
from .intake import install_intake
from .metrics import PROBE_ROUTES, Metrics
from .playground import router as playground_router
from .routes import is_ready, router

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, runner: Runner | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = await RewardEngine.open(settings, runner, observer=app.state.metrics)
        _publish(app, engine)
        try:
            yield
        finally:
            await engine.stop()

    app = FastAPI(
        title="R3HF token-reward server",
        version=__version__,
        description="Sequence scores and per-token rewards r_t = R(x, y<=t) - R(x, y<=t-1) from one forward pass "
        "of a causal reward model (R3HF / RED, arXiv 2411.08302).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = None
    app.state.drain = Drain()
    app.state.metrics = Metrics()
    app.state.metrics.batch_token_budget.set(settings.max_batch_tokens)
    install_error_handlers(app)
    install_disconnect_handler(app)
    routers = (router, trainer_adapters_router, playground_router)
    for included in routers:
        app.include_router(included)
    # Fixed route paths, so a request refused before routing (intake, keys) is still counted under its route.
    app.state.route_paths = frozenset(r.path for included in routers for r in included.routes if "{" not in r.path)
    _install_guards(app, settings)
    app.middleware("http")(_bookkeeping)
    return app


def _install_guards(app: FastAPI, settings: Settings) -> None:
    """Body intake inside, API keys outside it: an unauthenticated client is refused before any body is read."""
    install_intake(app, settings)
    keys = load_api_keys(settings)
    if keys:
        app.add_middleware(ApiKeyAuth, keys=keys, public_paths=PublicPaths(settings.public_paths))
        log.info("API keys required (%d configured); public paths: %s", len(keys), settings.public_paths)
    elif settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("no API key is configured and the server listens on %s: anyone who can reach it may use it",
                    settings.host)


def _publish(app: FastAPI, engine: RewardEngine) -> None:
    info, metrics = engine.info, app.state.metrics
    metrics.build_info.labels(__version__, info.name, info.fingerprint, info.dtype, info.device).set(1)
    metrics.watch_queue(lambda: engine.queue_depth)
    app.state.engine = engine
    metrics.watch_ready(lambda: is_ready(app))


async def _bookkeeping(request: Request, call_next) -> Response:  # type: ignore[no-untyped-def]
    """Request id echo, total-time header, in-flight gauge and request counters."""
    metrics: Metrics = request.app.state.metrics
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    is_load = request.url.path not in PROBE_ROUTES
    started = time.perf_counter()
    drain: Drain = request.app.state.drain
    request.state.arrived_while_draining = drain.draining
    accepted = is_load and not drain.draining  # what a drain waits for; later arrivals get a quick 503
    if is_load:
        metrics.in_flight.inc()
    engine: RewardEngine | None = request.app.state.engine if accepted else None
    if accepted:
        drain.in_flight += 1
    if engine is not None:
        engine.request_arrived()  # the batcher's wait for company keys on this
    try:
        response = await call_next(request)
    except Exception:  # the catch-all 500 handler sits outside this middleware: count the 500 here
        metrics.request_done(_route_label(request), 500, ErrorType.INTERNAL.value, time.perf_counter() - started)
        raise
    finally:
        if is_load:
            metrics.in_flight.dec()
        if accepted:
            drain.in_flight -= 1
        if engine is not None:
            engine.request_done()
    elapsed = time.perf_counter() - started
    response.headers["x-request-id"] = request_id
    response.headers["x-total-time"] = f"{elapsed * 1000:.2f}"
    metrics.request_done(_route_label(request), response.status_code, response.headers.get("x-error-type", ""), elapsed)
    return response


def _route_label(request: Request) -> str:
    """The matched route's template (bounded label values); unknown paths share one label.

    A request refused before routing (by the body intake or the key check) has no matched route yet: it is still
    labelled with its route when its path is one of the app's fixed route paths.
    """
    route = request.scope.get("route")
    matched = getattr(route, "path", None)
    if matched:
        return matched
    path = request.url.path
    return path if path in request.app.state.route_paths else "other"
