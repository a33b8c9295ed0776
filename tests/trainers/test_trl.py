"""TRL 1.16.0: real GRPOTrainer / RLOOTrainer runs (2 steps, CPU, a tiny random Llama policy) scored by the server,
and the dense-credit R3HFDenseGRPOTrainer."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from r3hf_client import RewardClient
from r3hf_client.adapters.trl import sample_item
from r3hf_client.adapters.trl_dense import scoring_item
from r3hf_client.projection import project_result
from r3hf_client.token_bytes import policy_byte_spans

pytestmark = pytest.mark.slow

SEQUENCE_RUNS = ("text_sync", "chat_async", "rloo_text")
DENSE_RUNS = ("dense_text", "dense_chat_other_tokenizer", "dense_uniform_beta")


@pytest.fixture(scope="module")
def trl_report(run_driver):
    return run_driver("trl_grpo.py", *SEQUENCE_RUNS, *DENSE_RUNS)


@pytest.mark.parametrize("run", SEQUENCE_RUNS)
def test_trainer_logs_two_steps_of_the_servers_scores(trl_report, rm_url, run):
    report = trl_report[run]
    assert [entry["step"] for entry in report["log"]] == [1, 2]
    assert len(report["calls"]) == 2  # one reward call per generation batch
    with RewardClient(rm_url) as client:
        for entry, call in zip(report["log"], report["calls"]):
            items = [sample_item(p, c) for p, c in zip(call["prompts"], call["completions"])]
            expected = [r.score for r in client.score(items, truncation="left").results]
            assert call["rewards"] == pytest.approx(expected, abs=1e-5)
            assert entry["reward"] == pytest.approx(sum(expected) / len(expected), abs=1e-4)
    conversational = [isinstance(call["prompts"][0], list) for call in report["calls"]]
    assert conversational == [run.startswith("chat")] * 2


@pytest.mark.parametrize("run", DENSE_RUNS)
def test_dense_advantages_are_group_normalised_returns_to_go(trl_report, run):
    report = trl_report[run]
    assert [entry["step"] for entry in report["log"]] == [1, 2] and len(report["dense_steps"]) == 2
    for entry, step in zip(report["log"], report["dense_steps"]):
        rows, advantages = step["rows"], torch.tensor(step["advantages"])
        assert list(advantages.shape) == step["advantages_shape"] == [4, advantages.shape[1]]
        assert step["row_lengths"] == [len(ids) for ids in step["completion_ids"]]
        # TRL still logs the sequence score as its reward
        assert entry["reward"] == pytest.approx(sum(step["scores"]) / 4, abs=1e-4)
        totals = torch.tensor([math.fsum(r) for r in rows])
        grpo = (totals - totals.mean()) / (totals.std() + 1e-4)
        for i, row in enumerate(rows):
            earned_before = torch.tensor([math.fsum(row[:t]) for t in range(len(row))])
            want = grpo[i] - earned_before / (totals.std() + 1e-4)
            assert torch.allclose(advantages[i, : len(row)], want, atol=1e-4)
            assert torch.all(advantages[i, len(row):] == 0)


@pytest.mark.parametrize("run", DENSE_RUNS)
def test_dense_rows_are_the_servers_token_rewards_on_the_policys_tokens(trl_report, rm_url, run):
    policy = PreTrainedTokenizerFast.from_pretrained(trl_report[run]["policy"])
    options = trl_report[run]["options"]
    with RewardClient(rm_url) as client:
        for step in trl_report[run]["dense_steps"]:
            assert all(step["aligned"])
            for sum_, score, prompt_score in zip(step["row_sums"], step["scores"], step["prompt_scores"]):
                # r3hf rewards sum to score - prompt_score; uniform (any beta) spreads the score itself
                assert sum_ == pytest.approx(score - (0 if options else prompt_score), abs=1e-5)
            texts = [policy.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
                     for ids in step["completion_ids"]]
            items = [scoring_item(p, t) for p, t in zip(step["prompts"], texts)]
            direct = client.token_rewards(items, truncation="left", return_tokens=True, **options).results
            for row, result, text, ids in zip(step["rows"], direct, texts, step["completion_ids"]):
                want = project_result(result, text, policy_byte_spans(text, ids, policy), len(ids))
                assert row == pytest.approx(want.token_rewards, abs=1e-5)
