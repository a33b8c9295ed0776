"""The trainer adapters get the client's failover for free: with a dead replica listed first (nothing listens on its
port), TRL (sync and async), OpenRLHF file mode, verl and AReaL still score every sample on the live replica."""

from __future__ import annotations

import asyncio

import pytest

from live_server import free_port, live_server
from r3hf_client import RewardClient
from r3hf_client.adapters import areal, openrlhf, trl, verl
from r3hf_server.api.app import create_app
from r3hf_server.runner.fake import FakeRunner
from r3hf_server.settings import Settings

pytestmark = pytest.mark.slow

PROMPTS = ["How was your day?", "Name a colour."]
RESPONSES = [" It was wonderful.", " Blue, like the sea."]


@pytest.fixture(scope="module")
def replicas():  # type: ignore[no-untyped-def]
    app = create_app(Settings(runner="fake"), FakeRunner(max_length=128))
    with live_server(app) as live:
        dead = f"http://127.0.0.1:{free_port()}"
        with RewardClient(live) as client:
            expected = [r.score for r in client.score(
                [{"prompt": p, "response": r} for p, r in zip(PROMPTS, RESPONSES)]).results]
        yield dead, live, expected


def test_trl_reward_functions_fail_over(replicas):
    dead, live, expected = replicas
    with RewardClient([dead, live]) as client:
        assert trl.make_reward_func(client)(PROMPTS, RESPONSES) == pytest.approx(expected)
        stats = client.replica_stats()
    assert stats[dead].failed == 1 and not stats[dead].healthy  # it was tried first, and failed over
    reward = trl.make_async_reward_func([dead, live])
    assert asyncio.run(reward(PROMPTS, RESPONSES)) == pytest.approx(expected)


def test_env_configured_adapters_fail_over(replicas, monkeypatch):
    dead, live, expected = replicas
    monkeypatch.setenv("R3HF_CLIENT_URL", f"{dead},{live}")
    infos = [{"prompt": p} for p in PROMPTS]
    assert verl.compute_score_batch(["d", "d"], RESPONSES, [None, None], infos) == pytest.approx(expected)
    reply = openrlhf.openrlhf_rewards([p + r for p, r in zip(PROMPTS, RESPONSES)], PROMPTS)
    assert reply.scores == pytest.approx(expected)
    assert areal.reward_fn(PROMPTS[0], RESPONSES[0]) == pytest.approx(expected[0])
