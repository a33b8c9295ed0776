"""The dense-credit estimator of r3hf_client.adapters.trl_dense (the trainer itself runs in tests/trainers)."""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")  # the estimator works on tensors (R3HF_BLOCK_TORCH=1 runs skip this module)

from r3hf_client.adapters.trl_dense import dense_rows, group_advantages, returns_to_go, scoring_item  # noqa: E402
from r3hf_client.projection import PolicyTokenRewards  # noqa: E402


def projected(rewards: list[float], aligned: bool = True) -> PolicyTokenRewards:
    return PolicyTokenRewards(token_rewards=rewards, score=sum(rewards) + 0.5, prompt_score=0.5, aligned=aligned,
                              mapped_fraction=1.0, truncated=False, template_changed_response=False,
                              reward_sum=sum(rewards), sum_error=0.0)


def test_returns_to_go_sums_each_row_from_t_on_and_pads_with_zero():
    out = returns_to_go([[1.0, 2.0, 3.0], [4.0]], width=4)
    assert out.tolist() == [[6.0, 5.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0]]


def test_returns_to_go_refuses_a_row_wider_than_the_batch():
    with pytest.raises(ValueError, match="3 token rewards"):
        returns_to_go([[1.0, 2.0, 3.0]], width=2)


def test_first_token_advantage_is_grpos_and_later_tokens_lose_what_was_earned_before():
    rows = [[1.0, 2.0], [0.5, 0.0], [3.0, -1.0], [0.0, 0.0]]
    returns = returns_to_go(rows, width=3)
    totals = returns[:, 0]
    adv = group_advantages(returns, [2, 2, 2, 2], totals, slice(0, 4), num_generations=4, scale="group")
    grpo = (totals - totals.mean()) / (totals.std() + 1e-4)
    assert torch.allclose(adv[:, 0], grpo)
    # A_t = A_0 - (reward earned before t) / std
    assert torch.allclose(adv[:, 1], grpo - torch.tensor([1.0, 0.5, 3.0, 0.0]) / (totals.std() + 1e-4))
    assert adv[:, 2].abs().max() == 0  # beyond every completion


def test_groups_are_normalised_separately_and_scale_none_only_centres():
    rows = [[1.0], [3.0], [10.0], [30.0]]
    returns = returns_to_go(rows, width=1)
    adv = group_advantages(returns, [1] * 4, returns[:, 0], slice(0, 4), num_generations=2, scale="none")
    assert adv[:, 0].tolist() == [-1.0, 1.0, -10.0, 10.0]
    local = group_advantages(returns[2:], [1, 1], returns[:, 0], slice(2, 4), num_generations=2, scale="group")
    assert torch.allclose(local[:, 0], torch.tensor([-0.7071, 0.7071]), atol=1e-4)


def test_batch_scale_uses_one_std_for_every_group():
    returns = returns_to_go([[1.0], [3.0], [10.0], [30.0]], width=1)
    adv = group_advantages(returns, [1] * 4, returns[:, 0], slice(0, 4), num_generations=2, scale="batch")
    std = returns[:, 0].std()
    assert torch.allclose(adv[:, 0], torch.tensor([-1.0, 1.0, -10.0, 10.0]) / (std + 1e-4))
    with pytest.raises(ValueError, match="scale_rewards"):
        group_advantages(returns, [1] * 4, returns[:, 0], slice(0, 4), num_generations=2, scale="token")


def test_dense_rows_weight_the_rm_rewards_and_put_other_rewards_on_the_last_token():
    rows = dense_rows([projected([1.0, 2.0]), projected([4.0])], weight=0.5, others=[10.0, float("nan")])
    assert rows == [[0.5, 11.0], [2.0]]
    with pytest.raises(ValueError, match="non-finite"):
        dense_rows([projected([float("nan")])], weight=1.0, others=[0.0])


def test_scoring_item_text_and_chat_forms():
    assert scoring_item("Q:", " A") == {"prompt": "Q:", "response": " A"}
    chat = scoring_item([{"role": "user", "content": "hi", "extra": 1}], " yo")
    assert chat == {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " yo"}]}


def test_the_trl_adapter_imports_neither_trl_nor_torch():
    code = ("import sys, r3hf_client.adapters.trl as m; m.R3HFDenseReward; "
            "print('trl' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
