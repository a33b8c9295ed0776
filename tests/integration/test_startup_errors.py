"""``r3hf serve`` start-up failures: one line naming the cause and what to do, exit code 2, no traceback unless
``--log-level debug``; files are checked before any weights load."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import tiny_models
from r3hf_server.cli import main

pytestmark = pytest.mark.slow


def serve(capsys, *args: str) -> tuple[int, str]:
    code = main(["serve", "--port", "0", *args])
    return code, capsys.readouterr().err


def assert_one_line(code: int, err: str, *phrases: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("r3hf:")]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def test_a_local_path_that_does_not_exist_says_so(capsys, tmp_path):
    code, err = serve(capsys, "--model", str(tmp_path / "rm-typo"))
    assert_one_line(code, err, "no such directory")
    code, err = serve(capsys, "--model", "./models/reward-model-tpyo")
    assert_one_line(code, err, "no such directory")


def test_an_empty_directory_and_a_broken_config(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line(*serve(capsys, "--model", str(tmp_path / "empty")), "no config.json", "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert_one_line(*serve(capsys, "--model", str(broken)), "not valid JSON")


def test_truncated_weights_fail_before_loading(capsys, tiny_root, tmp_path):
    copy = shutil.copytree(tiny_root / "llama", tmp_path / "truncated")
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    assert_one_line(*serve(capsys, "--model", str(copy)), "truncated", "copy it again")


def test_a_missing_tokenizer_is_named(capsys, tiny_root, tmp_path):
    bare = tmp_path / "no-tokenizer"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_root / "llama" / name, bare / name)
    assert_one_line(*serve(capsys, "--model", str(bare)), "tokenizer", "--tokenizer")


def test_unsupported_attention_and_invalid_settings(capsys, tiny_root):
    assert_one_line(
        *serve(capsys, "--model", str(tiny_root / "gemma2"), "--attn-implementation", "sdpa"),
        "--attn-implementation auto",
    )
    code, err = serve(capsys, "--model", str(tiny_root / "llama"), "--max-batch-tokens", "0")
    assert code == 2 and "invalid settings" in err and "max_batch_tokens" in err and "Traceback" not in err


def test_no_hint_leads_to_a_crash(capsys, tiny_root, tmp_path):
    base = tiny_models.build_base_lm(tmp_path / "base", tiny_root / "tokenizer")
    code, err = serve(capsys, "--model", str(base))
    assert_one_line(code, err, "initialised at random", "base language model")
    assert "--head-name lm_head" not in err
    # Following a wrong idea anyway still gets a reason, not a traceback.
    assert_one_line(*serve(capsys, "--model", str(base), "--head-name", "lm_head"), "--head-name lm_head")
    value_head = tiny_models.build_value_head_checkpoint(tmp_path / "openrlhf", tiny_root / "llama")
    assert_one_line(*serve(capsys, "--model", str(value_head)), "--head-name value_head")


def test_the_traceback_appears_only_at_debug_level(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    command = [sys.executable, "-m", "r3hf_server", "serve", "--port", "0", "--model", str(tmp_path)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert_one_line(quiet.returncode, quiet.stderr, "cannot serve")
    loud = subprocess.run([*command, "--log-level", "debug"], capture_output=True, text=True, timeout=300, env=env)
    assert loud.returncode == 2 and "Traceback" in loud.stderr


def test_an_unknown_hub_id_offline_is_one_line():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "r3hf_server", "serve", "--port", "0", "--model", "no-such-org/no-such-rm"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert_one_line(proc.returncode, proc.stderr, "no-such-org/no-such-rm", "local directory")
