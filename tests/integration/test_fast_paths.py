"""Prompt reuse, packing and batching change no result beyond 1e-4 in fp32, on every architecture."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import tiny_models
from r3hf_server.runner.base import EncodedItem
from r3hf_server.runner.forward import equal_length_forward, packed_forward, padded_forward, shared_prompt_forward
from r3hf_server.runner.hf import build_hf_runner
from r3hf_server.runner.planning import BatchPolicy
from r3hf_server.settings import ModelLoadSettings

TOLERANCE = 1e-4
PROMPT = [1] + [40 + (7 * i) % 300 for i in range(30)]
RESPONSES = [[50 + (11 * i + j) % 300 for i in range(3 + 5 * j)] for j in range(8)]


def assert_close(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b)) <= TOLERANCE


@pytest.fixture(scope="module", params=sorted(tiny_models.ARCHITECTURES))
def runner(request, tiny_root):
    packing = "auto" if request.param in tiny_models.PACKING_UNSUPPORTED else "on"
    built = build_hf_runner(ModelLoadSettings(model=str(tiny_root / request.param), packing=packing))
    built.packing_supported = request.param not in tiny_models.PACKING_UNSUPPORTED
    return built


def test_the_fast_paths_are_verified_and_on(runner):
    assert runner.batch_policy.share_prompts and runner.batch_policy.packed == runner.packing_supported


def test_shared_prompt_and_packed_equal_separate_padded_passes(runner):
    alone = [padded_forward(runner.model, [PROMPT + r])[0] for r in RESPONSES]
    assert_close(shared_prompt_forward(runner.model, PROMPT, RESPONSES), alone)
    assert_close(shared_prompt_forward(runner.model, PROMPT, RESPONSES + RESPONSES[:2], True), alone + alone[:2])
    if runner.packing_supported:
        assert_close(packed_forward(runner.model, [PROMPT + r for r in RESPONSES]), alone)
    twins = [PROMPT + r for r in RESPONSES] + [list(reversed(PROMPT + r)) for r in RESPONSES]
    assert_close(equal_length_forward(runner.model, twins), [padded_forward(runner.model, [t])[0] for t in twins])
    assert_close(padded_forward(runner.model, [PROMPT + r for r in RESPONSES]), alone)


def test_a_mixed_batch_equals_each_item_alone(runner):
    group = [EncodedItem(tuple(PROMPT + r), len(PROMPT), len(PROMPT) + len(r)) for r in RESPONSES[:5]]
    others = [EncodedItem(tuple(r + PROMPT[:7]), 2, 2 + len(r)) for r in RESPONSES[5:]]
    twin = EncodedItem(tuple(reversed(others[0].input_ids)), 2, others[0].response_end)  # same length as others[0]
    batch = [group[0], others[0], group[1], group[2], others[1], group[3], others[2], group[4], twin]
    alone = [padded_forward(runner.model, [i.input_ids])[0] for i in batch]
    for policy in (
        BatchPolicy(), BatchPolicy(share_prompts=True), BatchPolicy(share_prompts=True, packed=True),
        BatchPolicy(equal_lengths_only=True), BatchPolicy(share_prompts=True, equal_lengths_only=True),
    ):
        if policy.packed and not runner.packing_supported:
            continue
        assert_close([r.prefix_scores for r in runner.with_policy(policy).forward(batch)], alone)


def test_grpo_groups_sent_as_separate_concurrent_requests_match_single_requests(serve, tiny_root):
    base = serve(tiny_root / "llama", max_wait_ms=20.0)
    prompt = "User: How are you today? Tell me about your day in a few words.\nAssistant:"
    items = [{"prompt": prompt, "response": f" Reply number {i}: " + "fine " * i} for i in range(8)]

    def one(item):
        return httpx.post(f"{base}/token_rewards", json={"items": [item]}, timeout=60).json()["results"][0]

    alone = [one(item) for item in items]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(one, items))
    in_one_request = httpx.post(f"{base}/token_rewards", json={"items": items}, timeout=60).json()["results"]
    for a, b, c in zip(alone, together, in_one_request):
        assert_close([b["token_rewards"], c["token_rewards"]], [a["token_rewards"], a["token_rewards"]])
        assert abs(a["score"] - c["score"]) <= TOLERANCE and abs(a["prompt_score"] - c["prompt_score"]) <= TOLERANCE
