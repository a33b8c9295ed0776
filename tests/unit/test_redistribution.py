import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from r3hf_server.redistribution import RedistributionOptions, sequence_scores, token_rewards

finite = st.floats(min_value=-50, max_value=50, allow_nan=False)


@st.composite
def layouts(draw):
    """prefix scores of n tokens, a prompt of p tokens, a response [p, q), a suffix [q, n)."""
    n = draw(st.integers(1, 40))
    scores = draw(st.lists(finite, min_size=n, max_size=n))
    p = draw(st.integers(0, n))
    q = draw(st.integers(p, n))
    return scores, p, q


@given(layouts())
def test_rewards_telescope_to_score_minus_prompt_score(layout):
    scores, p, q = layout
    out = token_rewards(scores, p, q, RedistributionOptions())
    assert len(out.token_rewards) == q - p
    assert math.isclose(sum(out.token_rewards), out.score - out.prompt_score, abs_tol=1e-9)


@given(layouts())
def test_zero_baseline_sums_to_score(layout):
    scores, p, q = layout
    out = token_rewards(scores, p, q, RedistributionOptions(baseline="zero"))
    if q > p:
        assert math.isclose(sum(out.token_rewards), out.score, abs_tol=1e-9)
        suffix_change = scores[-1] - scores[q - 1] if q - p == 1 else 0.0
        assert out.token_rewards[0] == pytest.approx(scores[p] + suffix_change)


@given(layouts(), st.floats(0, 1))
def test_beta_mixes_dense_and_sparse(layout, beta):
    scores, p, q = layout
    dense = token_rewards(scores, p, q, RedistributionOptions()).token_rewards
    mixed = token_rewards(scores, p, q, RedistributionOptions(beta=beta))
    sparse = [0.0] * (len(dense) - 1) + [mixed.score] if dense else []
    assert mixed.token_rewards == pytest.approx([beta * d + (1 - beta) * s for d, s in zip(dense, sparse)], abs=1e-9)


def test_each_token_gets_its_own_prefix_difference_and_the_suffix_goes_to_the_last():
    scores = [0.5, 1.0, 3.0, 2.0, 7.0, 10.0]  # prompt 0..1, response 2..4, suffix 5 (EOS)
    out = token_rewards(scores, 2, 5, RedistributionOptions())
    assert out.prompt_score == 1.0 and out.score == 10.0
    assert out.token_rewards == [2.0, -1.0, 5.0 + 3.0]


def test_sparse_and_beta_zero_put_the_score_on_the_last_token():
    scores = [0.5, 1.0, 3.0, 2.0, 7.0]
    for options in (RedistributionOptions(redistribution="sparse"), RedistributionOptions(beta=0.0)):
        assert token_rewards(scores, 2, 5, options).token_rewards == [0.0, 0.0, 7.0]


def test_empty_prompt_measures_the_first_token_against_zero():
    out = token_rewards([2.0, 5.0], 0, 2, RedistributionOptions())
    assert (out.prompt_score, out.token_rewards) == (0.0, [2.0, 3.0])


def test_empty_response_scores_as_its_prompt_and_has_no_rewards():
    assert sequence_scores([1.0, 4.0, 9.0], 2, 2) == (4.0, 4.0)  # the trailing EOS (9.0) is not the prompt's
    assert token_rewards([1.0, 4.0, 9.0], 2, 2, RedistributionOptions()).token_rewards == []
