"""bf16 (and fp16 where this CPU runs it) serve every architecture of the suite: no false refusal, scores within
0.1 * (1 + mean|s|) of fp32, the rewards' sum identity in float64, and the same fast paths as fp32 (or a logged
reason)."""

from __future__ import annotations

import logging
import math

import pytest
import torch

import tiny_models
from r3hf_server.errors import ModelRefusedError
from r3hf_server.redistribution import RedistributionOptions, token_rewards
from r3hf_server.runner.base import EncodedItem, TextInput
from r3hf_server.runner.hf import build_hf_runner
from r3hf_server.settings import ModelLoadSettings

pytestmark = pytest.mark.slow

PROMPT = [1] + [40 + (7 * i) % 300 for i in range(20)]
RESPONSES = [[50 + (11 * i + j) % 300 for i in range(4 + 6 * j)] for j in range(4)]
ITEMS = [EncodedItem(tuple(PROMPT + r), len(PROMPT), len(PROMPT) + len(r)) for r in RESPONSES] + [
    EncodedItem(tuple(r + PROMPT[:9]), 3, len(r)) for r in RESPONSES[:2]
]


TEXTS = [("User: how was the day?\nAssistant:", " What a wonderful, delightful day!"), ("def add(a, b):", " return a + b")]


def cpu_runs_fp16() -> bool:
    try:
        a = torch.ones(4, 4, dtype=torch.float16)
        return bool(torch.isfinite(torch.nn.functional.scaled_dot_product_attention(a[None], a[None], a[None])).all())
    except RuntimeError:
        return False


LOW_PRECISION = ["bfloat16"] + (["float16"] if cpu_runs_fp16() else [])


@pytest.fixture(scope="module")
def fp32_scores(tiny_root):
    cache: dict[str, tuple[list[list[float]], tuple[str, ...]]] = {}

    def get(arch: str):
        if arch not in cache:
            runner = build_hf_runner(ModelLoadSettings(model=str(tiny_root / arch)))
            cache[arch] = ([r.prefix_scores for r in runner.forward(ITEMS)], runner.info.batch_paths)
        return cache[arch]

    return get


@pytest.mark.parametrize("dtype", LOW_PRECISION)
@pytest.mark.parametrize("arch", sorted(tiny_models.ARCHITECTURES))
def test_low_precision_starts_and_matches_fp32(tiny_root, fp32_scores, arch, dtype, caplog):
    reference, fp32_paths = fp32_scores(arch)
    with caplog.at_level(logging.WARNING, logger="r3hf_server"):
        runner = build_hf_runner(ModelLoadSettings(model=str(tiny_root / arch), dtype=dtype))
    got = [r.prefix_scores for r in runner.forward(ITEMS)]
    for item, ours, ref in zip(ITEMS, got, reference):
        bound = 0.1 * (1 + sum(abs(s) for s in ref) / len(ref))
        assert max(abs(a - b) for a, b in zip(ours, ref)) <= bound, (arch, dtype)
        rewards = token_rewards(ours, item.response_start, item.response_end, RedistributionOptions()).token_rewards
        expected = math.fsum([ours[-1], -ours[item.response_start - 1]])
        assert abs(math.fsum(rewards) - expected) <= 1e-9 * (1 + abs(expected))
    lost = set(fp32_paths) - set(runner.info.batch_paths)
    assert not lost or "disabled" in caplog.text, f"{arch} {dtype} lost {lost} without saying why"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_bidirectional_decoder_is_refused_in_every_dtype(tmp_path, tiny_root, dtype):
    path = tiny_models.build_bidirectional_decoder(tmp_path / "bidirectional", tiny_root / "tokenizer")
    with pytest.raises(ModelRefusedError, match="not causal"):
        build_hf_runner(ModelLoadSettings(model=str(path), dtype=dtype))


@pytest.fixture(scope="module")
def other_kinds(tiny_root, tmp_path_factory):
    """The suite's encoder RMs (prefix expansion) and its custom-code RM (v_head on Llama), built once."""
    root = tmp_path_factory.mktemp("low-precision-kinds")
    tiny_models.build_encoder_tokenizer(root / "tokenizer")
    paths = {arch: tiny_models.build_encoder(arch, root / arch, root / "tokenizer") for arch in tiny_models.ENCODERS}
    paths["custom"] = tiny_models.build_custom_code_rm(root / "custom", tiny_root / "tokenizer")
    return paths


@pytest.mark.parametrize("kind", sorted(tiny_models.ENCODERS) + ["custom"])
def test_encoder_and_custom_code_rms_match_fp32_in_low_precision(other_kinds, kind):
    settings = {"model": str(other_kinds[kind]), "trust_remote_code": kind == "custom"}
    reference_runner = build_hf_runner(ModelLoadSettings(**settings))
    items = [reference_runner.encode(TextInput(p, r), "error", False) for p, r in TEXTS]
    reference = [r.prefix_scores for r in reference_runner.forward(items)]
    for dtype in LOW_PRECISION:
        runner = build_hf_runner(ModelLoadSettings(**settings, dtype=dtype))
        assert runner.info.prefix_scores == reference_runner.info.prefix_scores
        for item, ours, ref in zip(items, [r.prefix_scores for r in runner.forward(items)], reference):
            read = range(item.response_start - 1, item.response_end)  # what the rewards read, and the last score
            bound = 0.1 * (1 + sum(abs(ref[t]) for t in read) / len(read))
            assert max(abs(ours[t] - ref[t]) for t in [*read, -1]) <= bound, (kind, dtype)
            result = token_rewards(ours, item.response_start, item.response_end, RedistributionOptions())
            gap = math.fsum(result.token_rewards) - math.fsum([result.score, -result.prompt_score])
            assert abs(gap) <= 1e-9
