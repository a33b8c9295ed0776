"""Custom-code reward models (--trust-remote-code): a modeling_*.py with an MLP v_head on a Llama backbone, loaded
through its auto_map; the served prefix scores equal the model's own forward on every prefix."""

from __future__ import annotations

import httpx
import pytest
import torch
from transformers import AutoModel

import tiny_models
from r3hf_client.wire import InfoResponse, TokenRewardsResponse
from r3hf_server.errors import ModelRefusedError
from r3hf_server.runner.hf import build_hf_runner
from r3hf_server.settings import ModelLoadSettings

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def custom_rm(tiny_root, tmp_path_factory):
    return tiny_models.build_custom_code_rm(tmp_path_factory.mktemp("custom") / "rm", tiny_root / "tokenizer")


def own_prefix_scores(path, ids: list[int]) -> list[float]:
    model = AutoModel.from_pretrained(path, trust_remote_code=True, dtype=torch.float32).eval()
    with torch.inference_mode():
        return [float(model(input_ids=torch.tensor([ids[: k + 1]]))[0]) for k in range(len(ids))]


def test_served_prefix_scores_equal_the_models_own_forward_on_every_prefix(serve, custom_rm):
    base = serve(custom_rm, trust_remote_code=True, backbone_module="model", head_module="v_head")
    info = InfoResponse.model_validate(httpx.get(f"{base}/info").json())
    assert info.architecture == "TinyLlamaRewardModel" and info.prefix_scores == "one_pass"
    prompt_ids, response_ids = [1, 40, 41, 42, 43], [50, 61, 72, 83, 94, 105, 116, 127]
    body = {"items": [{"prompt_ids": prompt_ids, "response_ids": response_ids}], "baseline": "zero"}
    result = TokenRewardsResponse.model_validate(httpx.post(f"{base}/token_rewards", json=body).json()).results[0]
    running, ours = 0.0, []
    for reward in result.token_rewards:
        running += reward
        ours.append(running)
    reference = own_prefix_scores(custom_rm, prompt_ids + response_ids)
    assert max(abs(a - b) for a, b in zip(ours, reference[len(prompt_ids) :])) <= TOLERANCE
    assert abs(result.prompt_score - reference[len(prompt_ids) - 1]) <= TOLERANCE
    assert max(abs(r) for r in result.token_rewards) > 1e-3


def test_default_modules_are_the_base_model_and_the_v_head(custom_rm):
    runner = build_hf_runner(ModelLoadSettings(model=str(custom_rm), trust_remote_code=True))
    assert runner.loaded.head_name == "v_head" and runner.loaded.backbone is runner.loaded.model.model


def test_without_trust_remote_code_the_refusal_says_to_pass_it(custom_rm):
    with pytest.raises(ModelRefusedError, match="--trust-remote-code") as refused:
        build_hf_runner(ModelLoadSettings(model=str(custom_rm)))
    assert "--head-name" not in str(refused.value)  # loading one layer of the MLP head would serve wrong scores


def test_a_wrong_module_path_lists_what_is_there(custom_rm):
    with pytest.raises(ModelRefusedError, match=r"no submodule 'reward_head'.*'v_head'"):
        build_hf_runner(ModelLoadSettings(model=str(custom_rm), trust_remote_code=True, head_module="reward_head"))


def test_a_head_that_does_not_reproduce_the_models_own_score_is_refused(tiny_root, tmp_path):
    first_token = tiny_models.build_custom_code_rm(tmp_path / "first", tiny_root / "tokenizer", pool_first_token=True)
    with pytest.raises(ModelRefusedError, match="not applied per position"):
        build_hf_runner(ModelLoadSettings(model=str(first_token), trust_remote_code=True))
