"""One-pass prefix scores equal HF's own pooled logits over each truncated prefix, for every architecture."""

from __future__ import annotations

import httpx
import pytest
import torch
from transformers import AutoModelForSequenceClassification

import tiny_models
from r3hf_client.wire import TokenRewardsResponse

TOLERANCE = 1e-4


def hf_prefix_scores(model_dir, ids: list[int]) -> list[float]:
    """The reference: a separate forward over every prefix, read through HF's own pooling."""
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.inference_mode():
        return [float(model(input_ids=torch.tensor([ids[: k + 1]])).logits[0, 0]) for k in range(len(ids))]


@pytest.mark.parametrize("arch", sorted(tiny_models.ARCHITECTURES))
def test_one_pass_prefix_scores_equal_separate_passes(serve, tiny_root, arch):
    base = serve(tiny_root / arch)
    prompt_ids, response_ids = [1, 40, 41, 42, 43], [50, 61, 72, 83, 94, 105, 116, 127]
    body = {"items": [{"prompt_ids": prompt_ids, "response_ids": response_ids}], "baseline": "zero"}
    result = TokenRewardsResponse.model_validate(httpx.post(f"{base}/token_rewards", json=body).json()).results[0]
    # baseline zero: the running sum of the rewards is the prefix score at each response token
    ours, total = [], 0.0
    for reward in result.token_rewards:
        total += reward
        ours.append(total)
    reference = hf_prefix_scores(tiny_root / arch, prompt_ids + response_ids)
    assert max(abs(a - b) for a, b in zip(ours, reference[len(prompt_ids):])) <= TOLERANCE
    assert abs(result.prompt_score - reference[len(prompt_ids) - 1]) <= TOLERANCE
    assert abs(result.score - reference[-1]) <= TOLERANCE
    assert max(abs(r) for r in result.token_rewards) > 1e-3, "the tiny model should give non-trivial rewards"
