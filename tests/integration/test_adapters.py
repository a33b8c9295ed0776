"""Adapters and projection over HTTP against real tiny models: a policy whose tokenizer differs from the RM's."""

from __future__ import annotations

import math

import httpx
import pytest
import torch
from transformers import PreTrainedTokenizerFast

from policy_tokenizers import metaspace_byte_fallback_bpe
from r3hf_client import AsyncRewardClient, RewardClient
from r3hf_client.adapters.dense import dense_rewards
from r3hf_client.adapters.protocols import EXTRA_LOG_KEYS, OpenRLHFResponse
from r3hf_client.adapters.verl_dense import R3HFRewardManager

pytestmark = pytest.mark.slow

TEXTS = [
    ("User: How are you?\nAssistant:", " I am fine, thank you. 😀"),
    ("Say something in Japanese:", " 日本語のテキスト。"),
    ("Describe your coffee:", " café, naïve, über"),
    ("Empty:", ""),
]


@pytest.fixture(scope="module")
def rm_url(serve, tiny_root):
    return serve(tiny_root / "llama")


@pytest.fixture(scope="module")
def policy_tokenizer():
    """A Llama-2-style tokenizer, unlike the RM's byte-level BPE."""
    return PreTrainedTokenizerFast(tokenizer_object=metaspace_byte_fallback_bpe(), unk_token="<unk>",
                                   bos_token="<s>", eos_token="</s>", pad_token="<unk>")


def test_projection_onto_another_tokenizer_conserves_each_items_reward(rm_url, policy_tokenizer):
    ids = [policy_tokenizer(r, add_special_tokens=False)["input_ids"] + [policy_tokenizer.eos_token_id]
           for _, r in TEXTS]
    with RewardClient(rm_url) as client:
        projected = client.token_rewards_for_policy(
            [p for p, _ in TEXTS], [r for _, r in TEXTS], policy_ids=ids, policy_tokenizer=policy_tokenizer
        )
        direct = client.token_rewards([{"prompt": p, "response": r} for p, r in TEXTS])
    for item, rm, policy_ids in zip(projected, direct.results, ids):
        assert item.aligned and len(item.token_rewards) == len(policy_ids)
        assert math.fsum(item.token_rewards) == pytest.approx(rm.score - rm.prompt_score, abs=1e-9)
        assert item.mapped_fraction == 1.0 and abs(item.sum_error) < 1e-9


def test_the_async_client_projects_the_same_numbers(rm_url, policy_tokenizer):
    import asyncio

    prompts, responses = [p for p, _ in TEXTS], [r for _, r in TEXTS]
    ids = [policy_tokenizer(r, add_special_tokens=False)["input_ids"] for r in responses]

    async def run():
        async with AsyncRewardClient(rm_url, chunk_size=1) as client:
            return await client.token_rewards_for_policy(prompts, responses, policy_ids=ids,
                                                         policy_tokenizer=policy_tokenizer)

    with RewardClient(rm_url) as client:
        expected = client.token_rewards_for_policy(prompts, responses, policy_ids=ids,
                                                   policy_tokenizer=policy_tokenizer)
    for got, want in zip(asyncio.run(run()), expected, strict=True):
        assert got.token_rewards == pytest.approx(want.token_rewards, abs=1e-9)


def test_base64_transfer_decodes_to_float32_of_the_same_rewards(rm_url):
    items = [{"prompt": p, "response": r} for p, r in TEXTS]
    with RewardClient(rm_url) as exact, RewardClient(rm_url, encoding_format="base64") as compact:
        want, got = exact.token_rewards(items), compact.token_rewards(items)
    for w, g in zip(want.results, got.results):
        assert g.token_rewards == pytest.approx(w.token_rewards, rel=1e-6, abs=1e-6)


def test_get_reward_speaks_openrlhfs_protocol(rm_url):
    query = [p + r for p, r in TEXTS] + ["left-truncated query"]
    prompts = [p for p, _ in TEXTS] + ["a prompt that is not its prefix"]
    reply = httpx.post(f"{rm_url}/get_reward?token_rewards=true",
                       json={"query": query, "prompts": prompts, "labels": [""] * len(query)}).json()
    parsed = OpenRLHFResponse.model_validate(reply)
    assert len(parsed.rewards) == len(query) and parsed.scores == parsed.rewards
    assert all(math.isfinite(r) for r in parsed.rewards)
    assert set(parsed.extra_logs) == set(EXTRA_LOG_KEYS)
    assert parsed.extra_logs["r3hf_prompt_not_prefix"] == [0.0] * len(TEXTS) + [1.0]
    with RewardClient(rm_url) as client:
        scores = client.score([{"prompt": p, "response": r} for p, r in TEXTS])
    assert parsed.rewards[: len(TEXTS)] == pytest.approx([r.score for r in scores.results], abs=1e-6)
    assert [len(row) for row in parsed.token_rewards[: len(TEXTS)]] == [r.num_response_tokens for r in scores.results]
    empty = httpx.post(f"{rm_url}/get_reward", json={"query": [], "prompts": [], "labels": []}).json()
    assert empty == {"rewards": [], "scores": [], "extra_logs": {key: [] for key in EXTRA_LOG_KEYS}}
    mismatched = httpx.post(f"{rm_url}/get_reward", json={"query": ["a"], "prompts": ["a", "b"]})
    assert mismatched.status_code == 422 and mismatched.json()["error_type"] == "invalid_request"


def test_verl_dense_manager_fills_valid_response_tokens_only(rm_url, policy_tokenizer):
    manager = R3HFRewardManager(policy_tokenizer, client=RewardClient(rm_url))
    width = 40
    rows = [policy_tokenizer(r, add_special_tokens=False)["input_ids"] + [policy_tokenizer.eos_token_id]
            for _, r in TEXTS[:2]]
    prompts = [policy_tokenizer(p, add_special_tokens=False)["input_ids"][-8:] for p, _ in TEXTS[:2]]
    pad = policy_tokenizer.pad_token_id

    class Data:
        batch = {
            "prompts": torch.tensor([[pad] * (8 - len(p)) + p for p in prompts]),
            "responses": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
            "attention_mask": torch.tensor(
                [[0] * (8 - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (width - len(r)) for p, r in zip(prompts, rows)]
            ),
        }

    out = manager(Data(), return_dict=True)
    tensor, info = out["reward_tensor"], out["reward_extra_info"]
    assert tensor.dtype == torch.float32 and tensor.shape == (2, width)
    for i, row in enumerate(rows):
        assert torch.all(tensor[i, len(row):] == 0)
        assert tensor[i, : len(row)].sum().item() == pytest.approx(
            info["r3hf_score"][i] - info["r3hf_prompt_score"][i], abs=1e-4)
    assert info["r3hf_aligned"] == [True, True]
    rewards, mask = dense_rewards(out["reward_tensor"].tolist(), backend="numpy")
    assert rewards.shape == mask.shape == (2, width)
