"""The attention (ABC) strategy on real models: the weights read beside SDPA equal eager attention's, the scores of
that pass equal the default path's, and nothing of the capture outlives the request."""

from __future__ import annotations

import httpx
import pytest
import torch
from transformers import AutoModelForSequenceClassification

import tiny_models
from r3hf_client.wire import TokenRewardsResponse
from r3hf_server.runner.attention import last_attention_module
from r3hf_server.runner.base import EncodedItem
from r3hf_server.runner.hf import build_hf_runner
from r3hf_server.settings import DEMO_MODEL_DIR, ModelLoadSettings

IDS = (1, 40, 41, 42, 43, 50, 61, 72, 83, 94, 105)
PROMPT_LENGTH = 5


def eager_final_attention(model_dir, ids) -> list[float]:  # type: ignore[no-untyped-def]
    """The reference: transformers' own eager attention weights of the last layer, final row, mean over heads."""
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([list(ids)]), output_attentions=True)
    return out.attentions[-1][0, :, -1, :].mean(dim=0).tolist()


@pytest.fixture(scope="module")
def runners(tiny_root):
    return {
        arch: build_hf_runner(ModelLoadSettings(model=str(tiny_root / arch))) for arch in tiny_models.ARCHITECTURES
    }


@pytest.mark.parametrize("arch", sorted(tiny_models.ARCHITECTURES))
def test_final_attention_equals_eager_attention_and_scores_equal_the_default_path(runners, tiny_root, arch):
    runner = runners[arch]
    plain, attended = runner.forward(
        [EncodedItem(IDS, PROMPT_LENGTH, len(IDS)), EncodedItem(IDS, PROMPT_LENGTH, len(IDS), needs_attention=True)]
    )
    assert attended.final_attention is not None and plain.final_attention is None
    assert attended.prefix_scores == pytest.approx(plain.prefix_scores, abs=1e-5)
    assert attended.final_attention == pytest.approx(eager_final_attention(tiny_root / arch, IDS), abs=1e-5)
    module = last_attention_module(runner.model.backbone)  # None: eager weights read through output_attentions
    assert module is None or module.config is runner.model.backbone.config, "the swapped config must be put back"


def test_items_needing_attention_get_the_same_numbers_in_any_batch(runners):
    runner = runners["llama"]
    others = [EncodedItem(IDS[:7], 3, 7), EncodedItem(IDS[2:], 2, 9), EncodedItem(IDS, PROMPT_LENGTH, len(IDS))]
    wanted = EncodedItem(IDS, PROMPT_LENGTH, len(IDS), needs_attention=True)
    alone = runner.forward([wanted])[0]
    mixed = runner.forward([others[0], wanted, others[1], wanted, others[2]])
    for position in (1, 3):
        assert mixed[position].prefix_scores == pytest.approx(alone.prefix_scores, abs=1e-5)
        assert mixed[position].final_attention == pytest.approx(alone.final_attention, abs=1e-6)
    assert mixed[4].prefix_scores == pytest.approx(alone.prefix_scores, abs=1e-5) and mixed[4].final_attention is None


def test_the_demo_model_spreads_its_score_by_attention_over_http(serve):
    base = serve(DEMO_MODEL_DIR)
    item = {"prompt": "How was your day?", "response": " It was wonderful, but the traffic was awful."}
    answers = {}
    for strategy in ("r3hf", "attention", "uniform", "sparse"):
        body = {"items": [item], "redistribution": strategy, "return_tokens": True}
        reply = httpx.post(f"{base}/token_rewards", json=body, timeout=60)
        assert reply.status_code == 200, reply.text
        answers[strategy] = TokenRewardsResponse.model_validate(reply.json()).results[0]
    score = answers["r3hf"].score
    for strategy in ("attention", "uniform", "sparse"):
        assert answers[strategy].score == pytest.approx(score, abs=1e-6)
        assert sum(answers[strategy].token_rewards) == pytest.approx(score, abs=1e-6)
    attention = answers["attention"].token_rewards
    assert len(set(round(r, 9) for r in attention)) > 1, "attention credit should differ between tokens"
    assert all(r * score >= 0 for r in attention), "attention only splits the score: every share has its sign"
