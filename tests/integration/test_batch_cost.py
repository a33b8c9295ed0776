"""One cost model: what planning.batch_cost says a batch costs is the token positions the real runner feeds its
backbone, on every path, and it is what the dashboard's batch fill (r3hf_batch_padded_tokens) reports."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from r3hf_server.api.app import create_app
from r3hf_server.engine import build_runner
from r3hf_server.runner.base import EncodedItem, TextInput
from r3hf_server.runner.planning import BatchPolicy, batch_cost
from r3hf_server.settings import Settings

pytestmark = pytest.mark.slow

PROMPT = "Explain why the sky is blue in one short sentence, please. "
RESPONSES = ["Rayleigh scattering.", "Because blue light scatters more than red light does.", "Air.", "Dust, mostly."]
POLICIES = {
    "padded": BatchPolicy(),
    "equal lengths (CPU default)": BatchPolicy(equal_lengths_only=True),
    "packed": BatchPolicy(packed=True),
    "prompt reuse, padded": BatchPolicy(share_prompts=True),
    "prompt reuse, equal lengths": BatchPolicy(share_prompts=True, equal_lengths_only=True),
}


class CountingBackbone:
    """The backbone, counting the token positions of every forward it runs."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.positions = 0

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.positions += kwargs["input_ids"].numel()
        return self.inner(*args, **kwargs)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def demo_runner():
    return build_runner(Settings())


def batch(runner) -> list[EncodedItem]:  # type: ignore[no-untyped-def]
    items = [runner.encode(TextInput(PROMPT, r), "error", False) for r in RESPONSES]
    items += [runner.encode(TextInput("Other prompt. ", r), "error", False) for r in RESPONSES[:2]]
    attended = runner.encode(TextInput(PROMPT, RESPONSES[1]), "error", False)
    return [*items, EncodedItem(attended.input_ids, attended.response_start, attended.response_end,
                                needs_attention=True)]


@pytest.mark.parametrize("path", sorted(POLICIES))
def test_the_cost_model_is_what_the_backbone_runs(demo_runner, path):
    runner = demo_runner.with_policy(POLICIES[path])
    counting = CountingBackbone(runner.model.backbone)
    runner.model.backbone = counting
    items = batch(runner)
    runner.forward(items)
    assert counting.positions == batch_cost(items, runner.batch_policy), path


def padded_tokens_sum(client: TestClient) -> float:
    text = client.get("/metrics").text
    return next(
        sample.value for family in text_string_to_metric_families(text) for sample in family.samples
        if sample.name == "r3hf_batch_padded_tokens_sum"
    )


@pytest.mark.parametrize("flags", [
    {},  # CPU default: equal lengths only, prompt reuse on
    {"padding": "pad", "prompt_reuse": False},
    {"padding": "pad", "prompt_reuse": True, "min_shared_prompt_tokens": 4},
])
def test_the_dashboard_batch_fill_reports_the_runner_cost(flags):
    settings = Settings(max_wait_ms=200, **flags)
    runner = build_runner(settings)
    with TestClient(create_app(settings, runner)) as client:
        before = padded_tokens_sum(client)
        body = {"items": [{"prompt": PROMPT, "response": r} for r in RESPONSES]}
        assert client.post("/score", json=body).status_code == 200
        spent = padded_tokens_sum(client) - before
    items = [runner.encode(TextInput(PROMPT, r), "error", False) for r in RESPONSES]
    assert spent == batch_cost(items, runner.batch_policy)
    real = sum(len(i) for i in items)
    if runner.batch_policy.share_prompts or not runner.batch_policy.equal_lengths_only:
        assert spent != real  # a path where the cost is not the real token count: the test can tell them apart
