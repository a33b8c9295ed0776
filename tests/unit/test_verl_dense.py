"""R3HFRewardManager without verl installed: the reward loop's per-sample answer, the rm_scores layout, and the legacy
batch call agree (the real verl 0.9.1 loop runs in tests/trainers)."""

from __future__ import annotations

import asyncio

import pytest

torch = pytest.importorskip("torch")  # rm_scores are tensors (R3HF_BLOCK_TORCH=1 runs skip this module)

from r3hf_client.adapters.verl_dense import R3HFRewardManager  # noqa: E402
from r3hf_client.projection import PolicyTokenRewards  # noqa: E402


class Tokenizer:
    def decode(self, ids: list[int], skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool = False) -> str:
        return " ".join(str(i) for i in ids)


class Client:
    """Stands in for RewardClient: reward k of a response is 0.1 * (k + 1), score 10, prompt score 1."""

    def token_rewards_for_policy(self, prompts, responses, *, policy_ids, policy_tokenizer, truncation):  # type: ignore
        return [PolicyTokenRewards(token_rewards=[0.1 * (k + 1) for k in range(len(ids))], score=10.0,
                                   prompt_score=1.0, aligned=True, mapped_fraction=1.0, truncated=False,
                                   template_changed_response=False, reward_sum=0.0, sum_error=0.0)
                for ids in policy_ids]


class Data:
    """verl's layout: prompts left-padded to 4, responses right-padded to 5, one attention mask."""

    def __init__(self, rows: list[tuple[list[int], list[int]]]) -> None:
        self.rows = rows
        self.batch = {
            "prompts": torch.tensor([[0] * (4 - len(p)) + p for p, _ in rows]),
            "responses": torch.tensor([r + [0] * (5 - len(r)) for _, r in rows]),
            "attention_mask": torch.tensor([[0] * (4 - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (5 - len(r))
                                            for p, r in rows]),
        }

    def __getitem__(self, rows: slice) -> Data:
        return Data(self.rows[rows])


ROWS = [([7, 8], [1, 2, 3]), ([9], [4, 5, 6, 2, 2])]


def test_run_single_then_assemble_equals_the_legacy_batch_call():
    manager = R3HFRewardManager(Tokenizer(), client=Client())
    data = Data(ROWS)
    singles = [asyncio.run(manager.run_single(data[i : i + 1])) for i in range(len(ROWS))]
    assert singles[0]["reward_score"] == pytest.approx([0.1, 0.2, 0.3])
    assert singles[1]["reward_score"] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert singles[0]["reward_extra_info"] == {"r3hf_score": 10.0, "r3hf_prompt_score": 1.0, "r3hf_aligned": True,
                                               "r3hf_mapped_fraction": 1.0}
    rm_scores = R3HFRewardManager.assemble_rm_scores(data, [s["reward_score"] for s in singles])
    assert rm_scores.dtype == torch.float32 and rm_scores.shape == (2, 5)
    assert torch.allclose(rm_scores[0], torch.tensor([0.1, 0.2, 0.3, 0.0, 0.0]))
    assert torch.equal(rm_scores, manager(data))


def test_assemble_refuses_a_row_that_does_not_match_the_valid_length():
    with pytest.raises(ValueError, match="sample 0: 2 token rewards for 3 response tokens"):
        R3HFRewardManager.assemble_rm_scores(Data(ROWS[:1]), [[0.1, 0.2]])
