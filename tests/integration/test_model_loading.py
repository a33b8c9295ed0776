"""Start-up refuses models that cannot give exact per-token rewards, and loads renamed or normalised heads."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

import tiny_models
from r3hf_server.errors import ModelRefusedError
from r3hf_server.runner.hf import build_hf_runner
from r3hf_server.settings import ModelLoadSettings

pytestmark = pytest.mark.slow


def load(path, **overrides):
    return build_hf_runner(ModelLoadSettings(model=str(path), **overrides))


def test_a_base_lm_with_no_head_is_refused(tiny_root, tmp_path):
    path = tiny_models.build_base_lm(tmp_path / "base", tiny_root / "tokenizer")
    with pytest.raises(ModelRefusedError, match="initialised at random"):
        load(path)


def test_an_encoder_reward_model_is_served_by_prefix_expansion_not_one_pass(tiny_root, tmp_path):
    path = tiny_models.build_bert(tmp_path / "bert", tiny_root / "tokenizer")
    runner = load(path)
    assert runner.info.prefix_scores == "expanded" and runner.info.batch_paths == ("expanded",)


def test_a_head_saved_under_another_name_is_refused_then_loaded_with_head_name(tiny_root, tmp_path):
    path = tiny_models.build_value_head_checkpoint(tmp_path / "openrlhf", tiny_root / "llama", mean=0.5, std=2.0)
    with pytest.raises(ModelRefusedError, match="head-name"):
        load(path)
    renamed = load(path, head_name="value_head")
    original = load(tiny_root / "llama")
    ids = [[1, 40, 41, 42, 43]]
    raw = original.prefix_scores_of_ids(ids)[0]
    normalised = renamed.prefix_scores_of_ids(ids)[0]
    assert renamed.info.score_normalization == (0.5, 2.0)
    assert normalised == pytest.approx([(r - 0.5) / 2.0 for r in raw], abs=1e-5)
    assert renamed.info.fingerprint != original.info.fingerprint


def test_a_multi_label_head_needs_a_label_index(tiny_root, tmp_path):
    config = AutoConfig.from_pretrained(tiny_root / "llama")
    config.num_labels = 2
    torch.manual_seed(0)
    out = tmp_path / "two-labels"
    AutoModelForSequenceClassification.from_config(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_root / "llama").save_pretrained(out)
    with pytest.raises(ModelRefusedError, match="--label-index"):
        load(out)
    first, second = load(out, label_index=0), load(out, label_index=1)
    assert first.prefix_scores_of_ids([[1, 40, 41]]) != second.prefix_scores_of_ids([[1, 40, 41]])
    with pytest.raises(ModelRefusedError, match="out of range"):
        load(out, label_index=2)


def test_fingerprint_tells_models_and_dtypes_apart(tiny_root):
    fingerprints = {load(tiny_root / arch).info.fingerprint for arch in ("llama", "mistral", "qwen2")}
    assert len(fingerprints) == 3
    assert load(tiny_root / "llama").info.fingerprint == load(tiny_root / "llama").info.fingerprint
    assert load(tiny_root / "llama", dtype="bfloat16").info.fingerprint != load(tiny_root / "llama").info.fingerprint


def test_max_length_is_the_smaller_of_tokenizer_and_model_limits(tiny_root):
    assert load(tiny_root / "gpt2").info.max_length == 256
    assert load(tiny_root / "llama", max_length=100).info.max_length == 100


def test_the_cli_exits_with_the_reason_for_a_refused_model(tiny_root, tmp_path):
    path = tiny_models.build_base_lm(tmp_path / "base-cli", tiny_root / "tokenizer")
    proc = subprocess.run(
        [sys.executable, "-m", "r3hf_server", "serve", "--model", str(path), "--port", "0"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "cannot serve" in proc.stderr and "initialised at random" in proc.stderr


def test_fingerprint_does_not_depend_on_where_the_model_lives(tiny_root, tmp_path):
    import shutil

    shutil.copytree(tiny_root / "llama", tmp_path / "elsewhere")
    assert load(tmp_path / "elsewhere").info.fingerprint == load(tiny_root / "llama").info.fingerprint


def test_each_architecture_reports_the_attention_it_runs_and_its_batch_paths(tiny_root):
    # Gemma-2 (soft-capping) and BLOOM (ALiBi) have no SDPA: they start on their default attention.
    for arch, attention in (("gemma2", "eager"), ("bloom", "eager"), ("llama", "sdpa")):
        info = load(tiny_root / arch).info
        assert info.attention_implementation == attention and info.prefix_scores == "one_pass"
        assert info.batch_paths == ("equal_lengths", "shared_prompt")  # CPU defaults, both verified at start-up
    with pytest.raises(ModelRefusedError, match="--attn-implementation auto"):
        load(tiny_root / "gemma2", attn_implementation="sdpa")
