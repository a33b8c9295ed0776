"""Fault injection into the real runner (the demo reward model): torch's own OutOfMemoryError raised from inside the
backbone is split around with unchanged results, a NaN-producing head is a clear 500, and the warm-up refuses a
budget the "device" cannot hold."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from faulty_apps import in_process  # noqa: E402
from r3hf_server.api.app import create_app  # noqa: E402
from r3hf_server.engine import build_runner  # noqa: E402
from r3hf_server.errors import WarmUpError  # noqa: E402
from r3hf_server.runner.base import TextInput  # noqa: E402
from r3hf_server.settings import Settings  # noqa: E402

pytestmark = pytest.mark.slow

ITEMS = [{"prompt": "How was your day?", "response": " It was" + " wonderful" * (1 + i % 3)} for i in range(12)]


class OutOfMemoryAbove:
    """Wraps the backbone: a forward over more than ``limit`` tokens raises torch.cuda.OutOfMemoryError, as a GPU
    would; anything smaller runs the real model."""

    def __init__(self, backbone, limit: int) -> None:  # type: ignore[no-untyped-def]
        self.backbone, self.limit, self.refused = backbone, limit, 0

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.numel() > self.limit:
            self.refused += 1
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {ids.numel()} tokens' worth")
        return self.backbone(*args, **kwargs)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.backbone, name)


@pytest.fixture(scope="module")
def reference_scores():
    with in_process(create_app(Settings())) as client:
        return client.post("/token_rewards", json={"items": ITEMS}).json()["results"]


def test_torch_out_of_memory_in_the_forward_is_split_around(reference_scores):
    runner = build_runner(Settings())
    app = create_app(Settings(max_wait_ms=50), runner)
    with in_process(app) as client:
        longest = max(len(runner.encode(TextInput(i["prompt"], i["response"]), "error", False)) for i in ITEMS)
        guard = OutOfMemoryAbove(runner.model.backbone, limit=longest)  # any item fits alone, no two long ones do
        runner.model.backbone = guard  # after the warm-up: the budget itself is fine, this batch is not
        r = client.post("/token_rewards", json={"items": ITEMS})
        assert r.status_code == 200, r.text
        for got, want in zip(r.json()["results"], reference_scores):
            assert got["score"] == pytest.approx(want["score"], abs=1e-4)
            assert got["token_rewards"] == pytest.approx(want["token_rewards"], abs=1e-4)
        assert guard.refused >= 1
        assert 'r3hf_oom_splits_total' in client.get("/metrics").text


def test_a_model_that_outputs_nan_gets_a_non_finite_output_error():
    runner = build_runner(Settings())
    app = create_app(Settings(), runner)
    with in_process(app) as client:
        with torch.no_grad():
            next(runner.model.head.parameters()).fill_(float("nan"))
        r = client.post("/score", json={"items": ITEMS[:2]})
        assert r.status_code == 500 and r.json()["error_type"] == "non_finite_output"
        assert "NaN" in r.json()["error"] and "score\"" not in r.text


def test_the_warm_up_refuses_a_budget_the_device_cannot_hold():
    runner = build_runner(Settings())
    runner.model.backbone = OutOfMemoryAbove(runner.model.backbone, limit=2048)
    with pytest.raises(WarmUpError, match="--max-batch-tokens 8192"):
        with in_process(create_app(Settings(max_batch_tokens=8192), runner)):
            pass
    with in_process(create_app(Settings(max_batch_tokens=2048), runner)) as client:
        assert client.post("/score", json={"items": ITEMS[:1]}).status_code == 200


def test_a_lone_surrogate_never_reaches_the_real_tokenizer():
    with in_process(create_app(Settings())) as client:
        body = b'{"items": [{"prompt": "How was \\ud800 your day?", "response": " Fine."}]}'
        r = client.post("/token_rewards", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["error_type"] == "invalid_request"
