"""Trainers' own remote-reward protocols, so they can use this server with no code on their side.

- OpenRLHF: ``--remote_rm_url http://host:port/get_reward``.
- slime: ``--rm-url http://host:port/slime/reward --reward-key score``.

Both score the text form (prompt + response). They default to ``truncation=left`` (drop the start of an
over-long prompt, never the response): a 422 in the middle of a training run would break the step.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from r3hf_client import wire
from r3hf_client.adapters.protocols import (
    OpenRLHFRequest, OpenRLHFResponse, SlimeRequest, SlimeResponse, check_prompts, openrlhf_reply, split_query,
)

from ..engine import RequestTimings, TextInput
from ..errors import InvalidInputError
from ..redistribution import RedistributionOptions
from . import convert
from .disconnect import unless_disconnected
from .intake import PreparsedBodyRoute
from .routes import ERROR_RESPONSES, engine_for, observe

router = APIRouter(tags=["trainer adapters"], route_class=PreparsedBodyRoute)  # parsed by api.intake


@router.post(
    "/get_reward", operation_id="openrlhf_get_reward", response_model=OpenRLHFResponse,
    response_model_exclude_none=True, responses=ERROR_RESPONSES,
    summary="OpenRLHF's remote reward protocol: one sequence score per query",
)
async def get_reward(
    body: OpenRLHFRequest, request: Request, response: Response,
    token_rewards: bool = False, truncation: wire.Truncation = "left",
) -> OpenRLHFResponse:
    """``rewards`` = ``scores`` = R(x, y) of ``prompt = prompts[i]``, ``response = query[i][len(prompts[i]):]``.

    Extra OpenRLHF servers receive empty lists and get empty lists back. ``?token_rewards=true`` adds per-token
    rewards under a top-level key of their own.
    """
    if not body.query:
        return openrlhf_reply([], [], [] if token_rewards else None)
    try:
        prompts = check_prompts(body.query, body.prompts)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from exc
    splits = [split_query(query, prompt) for query, prompt in zip(body.query, prompts)]
    items = [TextInput(prompt, text) for prompt, text, _ in splits]
    engine, timings = engine_for(request), RequestTimings()
    if token_rewards:
        work = engine.token_rewards(items, RedistributionOptions(), truncation, False, timings)
    else:
        work = engine.score(items, truncation, timings)
    outcomes = await unless_disconnected(request, work)  # OpenRLHF retries after its timeout: drop abandoned work
    observe(request, response, "/get_reward", outcomes, timings)
    results = [convert.score_result(i, o) for i, o in enumerate(outcomes)]
    rows = [o.scores.token_rewards for o in outcomes] if token_rewards else None
    return openrlhf_reply(results, [matched for _, _, matched in splits], rows)


@router.post(
    "/slime/reward", operation_id="slime_reward", response_model=SlimeResponse, responses=ERROR_RESPONSES,
    summary="slime's remote reward protocol: {prompt, response, label} in, {score, ...} out",
)
async def slime_reward(
    body: SlimeRequest, request: Request, response: Response, truncation: wire.Truncation = "left"
) -> SlimeResponse:
    engine, timings = engine_for(request), RequestTimings()
    work = engine.score([TextInput(body.prompt, body.response)], truncation, timings)
    outcomes = await unless_disconnected(request, work)
    observe(request, response, "/slime/reward", outcomes, timings)
    result = convert.score_result(0, outcomes[0])
    return SlimeResponse(
        score=result.score, prompt_score=result.prompt_score,
        num_response_tokens=result.num_response_tokens, truncated=result.truncated,
    )
