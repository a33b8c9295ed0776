"""HTTP routes: fetch the engine from app.state, call it, map the result to wire models."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from r3hf_client import wire

from .. import __version__
from ..engine import ItemOutcome, RequestTimings, RewardEngine
from ..errors import NotReadyError
from ..redistribution import RedistributionOptions
from . import convert
from .disconnect import unless_disconnected
from .intake import PreparsedBodyRoute

router = APIRouter(route_class=PreparsedBodyRoute)  # bodies arrive parsed by api.intake, at a bounded cost

ERROR_RESPONSES = {
    code: {"model": wire.ErrorBody, "description": text}
    for code, text in {
        400: "Malformed body", 401: "Missing or wrong API key (when the server has keys)",
        408: "The body arrived too slowly (--body-timeout-s, --min-body-bytes-per-s)",
        413: "Body or item count over the limit", 415: "Content type is not application/json",
        422: "Invalid request: names the item and what to change",
        429: "Overloaded (items or body bytes in flight): retry after the Retry-After header's seconds",
        500: "Model failure",
        503: "Model not loaded yet, or shutting down", 504: "Not answered within --request-timeout-s",
    }.items()
}


def engine_for(request: Request) -> RewardEngine:
    """The engine, if it takes work now; otherwise 503 (``not_ready``), which clients retry."""
    engine: RewardEngine | None = getattr(request.app.state, "engine", None)
    if engine is None or not engine.ready:
        raise NotReadyError("the model is not loaded yet or the server is shutting down; retry shortly")
    if getattr(request.state, "arrived_while_draining", False):
        raise NotReadyError("the server is shutting down; retry (another replica will answer)")
    return engine


def observe(
    request: Request, response: Response, route: str, outcomes: list[ItemOutcome], timings: RequestTimings
) -> None:
    """Timing headers on the response and the item metrics, for every scoring route."""
    for name, seconds in (
        ("x-tokenization-time", timings.tokenize_seconds),
        ("x-queue-time", timings.queue_seconds),
        ("x-inference-time", timings.inference_seconds),
    ):
        response.headers[name] = f"{seconds * 1000:.2f}"
    token_counts = [len(outcome.encoded) for outcome in outcomes]
    request.app.state.metrics.items_scored(route, token_counts, timings.tokenize_seconds)


@router.post(
    "/token_rewards", operation_id="token_rewards", response_model=wire.TokenRewardsResponse, responses=ERROR_RESPONSES,
    summary="Sequence scores and per-token R3HF rewards from one forward pass per item",
)
async def token_rewards(
    body: wire.TokenRewardsRequest, request: Request, response: Response
) -> wire.TokenRewardsResponse:
    engine, timings = engine_for(request), RequestTimings()
    options = RedistributionOptions(body.redistribution, body.beta, body.baseline)
    outcomes = await unless_disconnected(request, engine.token_rewards(
        [convert.to_input(i) for i in body.items], options, body.truncation, body.return_tokens, timings
    ))
    observe(request, response, "/token_rewards", outcomes, timings)
    return wire.TokenRewardsResponse(
        model=engine.info.name, fingerprint=engine.info.fingerprint, usage=convert.usage(outcomes),
        results=[
            convert.token_reward_result(i, o, body.return_tokens, body.encoding_format) for i, o in enumerate(outcomes)
        ],
    )


@router.post(
    "/score", operation_id="score", response_model=wire.ScoreResponse, responses=ERROR_RESPONSES,
    summary="Sequence scores R(x, y) (and R(x, empty)) only",
)
async def score(body: wire.ScoreRequest, request: Request, response: Response) -> wire.ScoreResponse:
    engine, timings = engine_for(request), RequestTimings()
    outcomes = await unless_disconnected(
        request, engine.score([convert.to_input(i) for i in body.items], body.truncation, timings)
    )
    observe(request, response, "/score", outcomes, timings)
    return wire.ScoreResponse(
        model=engine.info.name, fingerprint=engine.info.fingerprint, usage=convert.usage(outcomes),
        results=[convert.score_result(i, o) for i, o in enumerate(outcomes)],
    )


@router.get("/health", operation_id="health", summary="200 while the process and its batch worker are alive")
async def health(request: Request) -> JSONResponse:
    engine: RewardEngine | None = getattr(request.app.state, "engine", None)
    if engine is not None and not engine.alive and not engine.stopping:
        return JSONResponse({"status": "worker dead"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/ready", operation_id="ready", summary="200 once the model is loaded and warmed up; 503 before")
async def ready(request: Request) -> JSONResponse:
    if not is_ready(request.app):
        return JSONResponse({"status": "not ready"}, status_code=503)
    return JSONResponse({"status": "ready"})


def is_ready(app: FastAPI) -> bool:
    """Model loaded, worker alive, not draining: what /ready and r3hf_model_ready report."""
    engine: RewardEngine | None = getattr(app.state, "engine", None)
    return engine is not None and engine.ready and not app.state.drain.draining


@router.get("/info", operation_id="info", response_model=wire.InfoResponse, responses=ERROR_RESPONSES)
async def info(request: Request) -> wire.InfoResponse:
    i = engine_for(request).info
    return wire.InfoResponse(
        model=i.name, model_path=i.model_path, fingerprint=i.fingerprint, architecture=i.architecture,
        dtype=i.dtype, device=i.device, max_length=i.max_length, num_labels=i.num_labels, label_index=i.label_index,
        score_normalization=i.score_normalization, has_chat_template=i.has_chat_template, version=__version__,
        attention_implementation=i.attention_implementation, prefix_scores=i.prefix_scores,
        batch_paths=list(i.batch_paths),
    )


@router.get("/metrics", operation_id="metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
