"""OpenRLHF 0.11.2, verl 0.9.1 and AReaL 1.0.4: each release's own reward code path against the server."""

from __future__ import annotations

import math

import httpx
import pytest
from transformers import PreTrainedTokenizerFast

from r3hf_client import RewardClient
from r3hf_client.adapters.protocols import EXTRA_LOG_KEYS
from r3hf_server.settings import DEMO_MODEL_DIR

pytestmark = pytest.mark.slow


def test_openrlhf_executor_gets_the_same_rewards_over_http_and_from_the_python_file(run_driver, rm_url):
    report = run_driver("openrlhf_executor.py")
    http, from_file = report["http"], report["python_file"]
    assert [s["from_file"] for s in http] == [False] * 3 and [s["from_file"] for s in from_file] == [True] * 3
    direct = httpx.post(f"{rm_url}/get_reward", json={
        "query": [s["query"] for s in http], "prompts": [s["prompt"] for s in http], "labels": [""] * 3}).json()
    for i, (a, b) in enumerate(zip(http, from_file)):
        # A failed reward call leaves reward None in OpenRLHF (it only logs the error): both must be numbers.
        assert a["reward"] is not None and b["reward"] is not None
        assert a["reward_numel"] == b["reward_numel"] == 1
        assert a["reward"] == pytest.approx(direct["rewards"][i], abs=1e-6) == a["score"]
        assert b["reward"] == pytest.approx(direct["rewards"][i], abs=1e-5) == b["score"]
        assert set(a["extra_logs"]) == set(b["extra_logs"]) == set(EXTRA_LOG_KEYS)
        assert a["extra_logs"]["r3hf_prompt_not_prefix"] == 0.0
    # the flag docs/adapters.md gives for 0.11, and the old one 0.11 rejects
    assert report["parser"] == {"--reward.remote_url": True, "--remote_rm_url": False}


@pytest.fixture(scope="module")
def verl_report(run_driver):
    return run_driver("verl_reward_loop.py")


@pytest.mark.parametrize("name", ["compute_score_file", "compute_score_pkg"])
def test_verl_reward_loop_puts_compute_scores_score_on_the_last_valid_token(verl_report, rm_url, name):
    run, samples = verl_report[name], verl_report["samples"]
    assert run["manager_class"] == "NaiveRewardManager"
    with RewardClient(rm_url) as client:
        expected = [r.score for r in client.score(
            [{"prompt": s["prompt"], "response": s["response_text"]} for s in samples]).results]
    for row, valid, score in zip(run["rm_scores"], run["valid_lengths"], expected):
        assert len(row) == verl_report["response_width"]
        assert row[valid - 1] == pytest.approx(score, abs=1e-5)
        assert all(v == 0 for k, v in enumerate(row) if k != valid - 1)


@pytest.mark.parametrize("name", ["dense_manager_file", "dense_manager_pkg"])
def test_verl_reward_loop_fills_dense_rm_scores_from_the_r3hf_manager(verl_report, rm_url, name):
    run, samples = verl_report[name], verl_report["samples"]
    info = run["reward_extra_info"]
    assert run["manager_class"] == "R3HFRewardManager" and info["r3hf_aligned"] == [True] * len(samples)
    policy = PreTrainedTokenizerFast.from_pretrained(DEMO_MODEL_DIR)
    with RewardClient(rm_url) as client:
        expected = client.token_rewards_for_policy(
            [s["prompt_text"] for s in samples], [s["response_text"] for s in samples],
            policy_ids=[s["response_ids"] for s in samples], policy_tokenizer=policy, truncation="left")
    for i, (row, valid, want) in enumerate(zip(run["rm_scores"], run["valid_lengths"], expected)):
        assert len(row) == verl_report["response_width"] and valid == len(samples[i]["response_ids"])
        assert row[:valid] == pytest.approx(want.token_rewards, abs=1e-5)  # one reward per token, EOS included
        assert all(v == 0 for v in row[valid:])
        assert math.fsum(row) == pytest.approx(info["r3hf_score"][i] - info["r3hf_prompt_score"][i], abs=1e-4)
        assert info["r3hf_score"][i] == pytest.approx(want.score, abs=1e-5)


def test_areal_async_reward_wrapper_returns_the_servers_scores(run_driver, rm_url):
    report = run_driver("areal_wrapper.py")
    with RewardClient(rm_url) as client:
        expected = [r.score for r in client.score([{"prompt": p, "response": r} for p, r in report["samples"]]).results]
    assert report["types"] == ["float"] * len(expected)
    assert report["rewards"] == pytest.approx(expected, abs=1e-6)
