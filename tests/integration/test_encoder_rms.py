"""Encoder reward models served by prefix expansion: every prefix equals a separate pass of the model's own forward
over that prefix plus the tokenizer's closing specials; --prefix-stride; forwards within --max-batch-tokens."""

from __future__ import annotations

import math

import httpx
import pytest
import torch
from transformers import AutoModelForSequenceClassification

import tiny_models
from r3hf_client.wire import InfoResponse, TokenRewardsResponse
from r3hf_server.redistribution import RedistributionOptions, token_rewards
from r3hf_server.runner.base import IdsInput, TextInput
from r3hf_server.runner.hf import build_hf_runner
from r3hf_server.runner.planning import batch_cost
from r3hf_server.settings import ModelLoadSettings

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4
PROMPT, RESPONSE = "User: how was the day?\nAssistant:", " What a wonderful, delightful day! I love it."


@pytest.fixture(scope="module")
def encoder_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    tiny_models.build_encoder_tokenizer(root / "tokenizer")
    for arch in tiny_models.ENCODERS:
        tiny_models.build_encoder(arch, root / arch, root / "tokenizer")
    return root


def separate_passes(path, ids: list[int], positions: list[int], suffix: list[int]) -> list[float]:
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
    with torch.inference_mode():
        return [float(model(input_ids=torch.tensor([ids[: t + 1] + suffix])).logits[0, 0]) for t in positions]


@pytest.mark.parametrize("arch", sorted(tiny_models.ENCODERS))
def test_expanded_prefix_scores_equal_separate_passes(encoder_root, arch):
    runner = build_hf_runner(ModelLoadSettings(model=str(encoder_root / arch)))
    assert runner.info.prefix_scores == "expanded" and runner.info.batch_paths == ("expanded",)
    item = runner.encode(TextInput(PROMPT, RESPONSE), "error", False)
    suffix = list(runner.suffix)
    assert suffix and list(item.input_ids[item.response_end :]) == suffix
    ours = runner.forward([item])[0].prefix_scores
    positions = list(range(item.response_start - 1, item.response_end))
    reference = separate_passes(encoder_root / arch, list(item.input_ids), positions, suffix)
    assert max(abs(ours[t] - r) for t, r in zip(positions, reference)) <= TOLERANCE
    assert max(reference) - min(reference) > 1e-3, "the tiny model should give non-trivial prefix scores"
    # An ids item without the closing specials is scored with them, like the text form.
    ids_item = runner.encode(
        IdsInput(item.input_ids[: item.response_start], item.input_ids[item.response_start : item.response_end]),
        "error", False,
    )
    assert ids_item.input_ids == item.input_ids
    assert runner.forward([ids_item])[0].prefix_scores == pytest.approx(ours, abs=TOLERANCE)


def test_prefix_stride_scores_every_kth_prefix_and_spreads_each_change_evenly(encoder_root):
    exact = build_hf_runner(ModelLoadSettings(model=str(encoder_root / "bert")))
    strided = build_hf_runner(ModelLoadSettings(model=str(encoder_root / "bert"), prefix_stride=4))
    item = exact.encode(TextInput(PROMPT, RESPONSE), "error", False)
    full, coarse = exact.forward([item])[0].prefix_scores, strided.forward([item])[0].prefix_scores
    p, q = item.response_start, item.response_end
    anchors = [p - 1, *range(p + 3, q - 1, 4), q - 1]
    for t in anchors:
        assert abs(coarse[t] - full[t]) <= TOLERANCE
    rewards = token_rewards(coarse, p, q, RedistributionOptions()).token_rewards
    for a, b in zip(anchors, anchors[1:]):
        stride_rewards = rewards[a + 1 - p : b + 1 - p]
        assert max(stride_rewards) - min(stride_rewards) <= 1e-9  # one stride, one even share
    assert math.fsum(rewards) == pytest.approx(coarse[-1] - coarse[p - 1], abs=1e-9)
    cost = batch_cost([item], strided.batch_policy)
    assert cost < batch_cost([item], exact.batch_policy) / 2


def test_forwards_stay_within_max_batch_tokens_and_near_the_cost_model(encoder_root):
    runner = build_hf_runner(ModelLoadSettings(model=str(encoder_root / "roberta"), max_batch_tokens=200))
    items = [runner.encode(TextInput(PROMPT, RESPONSE[: 12 + 8 * k]), "error", False) for k in range(3)]
    shapes: list[tuple[int, int]] = []
    hook = runner.loaded.model.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        together = [r.prefix_scores for r in runner.forward(items)]
    finally:
        hook.remove()
    assert shapes and all(rows * width <= 200 for rows, width in shapes if rows > 1)
    # The batcher budgets the prefixes' real lengths; the forwards add the padding of length-sorted chunks and drop
    # identical prefixes (these items share their prompt and grow from each other, so here far fewer are fed).
    fed, budgeted = sum(rows * width for rows, width in shapes), batch_cost(items, runner.batch_policy)
    assert fed <= budgeted * 1.3
    alone = [runner.forward([item])[0].prefix_scores for item in items]
    assert together == [pytest.approx(a, abs=TOLERANCE) for a in alone]


def test_the_server_reports_expanded_and_scores_over_http(serve, encoder_root):
    base = serve(encoder_root / "deberta_v2")
    info = InfoResponse.model_validate(httpx.get(f"{base}/info").json())
    assert info.prefix_scores == "expanded" and info.batch_paths == ["expanded"]
    assert info.attention_implementation == "eager"  # DeBERTa-v2 has no SDPA: its default runs
    body = {"items": [{"prompt": PROMPT, "response": RESPONSE}]}
    result = TokenRewardsResponse.model_validate(httpx.post(f"{base}/token_rewards", json=body).json()).results[0]
    assert math.fsum(result.token_rewards) == pytest.approx(result.score - result.prompt_score, abs=1e-6)
    attention = {**body, "redistribution": "attention"}
    refused = httpx.post(f"{base}/token_rewards", json=attention)
    assert refused.status_code == 422 and "expansion" in refused.json()["error"]
