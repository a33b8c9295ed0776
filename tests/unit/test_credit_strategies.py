"""uniform and attention (ABC) strategies: the pure math, and the HTTP contract over the deterministic fake runner."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from r3hf_client import wire
from r3hf_server.redistribution import RedistributionOptions, token_rewards
from r3hf_server.runner.base import EncodedItem, ForwardResult
from r3hf_server.runner.fake import CharTokenizer, FakeRunner, attention_logit, fake_final_attention

finite = st.floats(min_value=-50, max_value=50, allow_nan=False)
weights = st.floats(min_value=1e-6, max_value=1.0, allow_nan=False)


@st.composite
def attended_layouts(draw):
    """prefix scores and attention weights of n tokens, a response [p, q) with q > p, a suffix [q, n)."""
    n = draw(st.integers(1, 40))
    scores = draw(st.lists(finite, min_size=n, max_size=n))
    attention = draw(st.lists(weights, min_size=n, max_size=n))
    p = draw(st.integers(0, n - 1))
    q = draw(st.integers(p + 1, n))
    return scores, attention, p, q


@given(attended_layouts(), st.sampled_from(["uniform", "attention"]), st.floats(0, 1))
def test_uniform_and_attention_rewards_sum_to_the_score_for_any_beta(layout, strategy, beta):
    scores, attention, p, q = layout
    out = token_rewards(scores, p, q, RedistributionOptions(strategy, beta), attention)
    assert len(out.token_rewards) == q - p
    assert math.isclose(sum(out.token_rewards), out.score, rel_tol=1e-9, abs_tol=1e-9)


@given(attended_layouts())
def test_attention_rewards_are_the_score_split_by_the_response_attention(layout):
    scores, attention, p, q = layout
    out = token_rewards(scores, p, q, RedistributionOptions("attention"), attention)
    response_mass = sum(attention[p:q])
    assert out.token_rewards == pytest.approx([out.score * a / response_mass for a in attention[p:q]], abs=1e-9)


def test_uniform_gives_every_token_score_over_t_and_beta_mixes_with_sparse():
    scores = [0.5, 1.0, 3.0, 2.0, 8.0]  # prompt 0..1, response 2..4
    assert token_rewards(scores, 2, 5, RedistributionOptions("uniform")).token_rewards == pytest.approx([8 / 3] * 3)
    mixed = token_rewards(scores, 2, 5, RedistributionOptions("uniform", beta=0.25)).token_rewards
    assert mixed == pytest.approx([0.25 * 8 / 3, 0.25 * 8 / 3, 0.25 * 8 / 3 + 0.75 * 8])


def test_attention_ignores_prompt_and_suffix_attention():
    scores = [0.0, 1.0, 2.0, 3.0, 6.0]  # prompt 0, response 1..3, suffix 4
    attention = [0.5, 0.1, 0.3, 0.1, 0.0]
    out = token_rewards(scores, 1, 4, RedistributionOptions("attention"), attention)
    assert out.token_rewards == pytest.approx([6.0 * 0.2, 6.0 * 0.6, 6.0 * 0.2])


def test_attention_without_weights_is_a_programming_error_but_sparse_and_beta_zero_need_none():
    with pytest.raises(ValueError, match="attention weights"):
        token_rewards([1.0, 2.0], 1, 2, RedistributionOptions("attention"))
    assert token_rewards([1.0, 2.0], 1, 2, RedistributionOptions("attention", beta=0.0)).token_rewards == [2.0]
    assert not RedistributionOptions("attention", beta=0.0).needs_attention
    assert RedistributionOptions("attention").needs_attention and not RedistributionOptions("uniform").needs_attention


def test_an_attention_row_with_no_response_mass_falls_back_to_uniform():
    out = token_rewards([1.0, 2.0, 4.0], 1, 3, RedistributionOptions("attention"), [1.0, 0.0, 0.0])
    assert out.token_rewards == [2.0, 2.0]


def test_a_forward_result_checks_its_attention_row_against_its_scores():
    result = ForwardResult([1.0, 2.0], [0.25, 0.75])
    assert result.prefix_scores == [1.0, 2.0] and result.final_attention == [0.25, 0.75]
    with pytest.raises(ValueError, match="3 attention weights for 2 positions"):
        ForwardResult([1.0, 2.0], [0.2, 0.3, 0.5])


def test_the_fake_runner_reports_attention_only_for_items_that_ask():
    runner = FakeRunner()
    ids = (1, 70, 71, 72)
    plain, attended = runner.forward([EncodedItem(ids, 1, 4), EncodedItem(ids, 1, 4, needs_attention=True)])
    assert plain.final_attention is None and plain.prefix_scores == attended.prefix_scores
    expected = [attention_logit(i) / sum(attention_logit(j) for j in ids) for i in ids]
    assert attended.final_attention == pytest.approx(expected) and sum(attended.final_attention) == pytest.approx(1)


def _fake_item_ids(prompt: str, response: str) -> list[int]:
    return CharTokenizer()(prompt + response)["input_ids"]


@pytest.mark.parametrize("strategy", ["uniform", "attention"])
def test_the_api_serves_the_new_strategies_with_the_documented_values(fake_client, strategy):
    prompt, response = "Hi", " there!"
    body = {"items": [{"prompt": prompt, "response": response}], "redistribution": strategy, "beta": 0.5}
    reply = fake_client.post("/token_rewards", json=body)
    assert reply.status_code == 200, reply.text
    result = wire.TokenRewardsResponse.model_validate(reply.json()).results[0]
    ids = _fake_item_ids(prompt, response)
    p, n = len(ids) - len(response), len(response)
    if strategy == "uniform":
        dense = [result.score / n] * n
    else:
        attention = fake_final_attention(ids)[p:]
        dense = [result.score * a / sum(attention) for a in attention]
    sparse = [0.0] * (n - 1) + [result.score]
    assert result.token_rewards == pytest.approx([0.5 * d + 0.5 * s for d, s in zip(dense, sparse)], abs=1e-12)


def test_an_unknown_strategy_is_rejected_naming_the_choices(fake_client):
    body = {"items": [{"prompt": "a", "response": "b"}], "redistribution": "abc"}
    reply = fake_client.post("/token_rewards", json=body)
    assert reply.status_code == 422 and "attention" in reply.json()["error"]
