"""An item's result does not depend on its batch mates, the tokenizer's padding side, or concurrent traffic."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from transformers import AutoTokenizer

TOLERANCE = 1e-4
TARGET = {"prompt": "User: How are you?\nAssistant:", "response": " I am fine, thank you. What a wonderful day!"}
SHORT = {"prompt": "Hi", "response": " ok"}
LONG = {"prompt": "The quick brown fox jumps over the lazy dog. " * 6, "response": " Reward models score responses." * 3}


def rewards(base: str, items: list[dict], **options) -> list[dict]:
    r = httpx.post(f"{base}/token_rewards", json={"items": items, **options}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def assert_same(a: dict, b: dict) -> None:
    assert abs(a["score"] - b["score"]) <= TOLERANCE and abs(a["prompt_score"] - b["prompt_score"]) <= TOLERANCE
    assert len(a["token_rewards"]) == len(b["token_rewards"])
    assert max(abs(x - y) for x, y in zip(a["token_rewards"], b["token_rewards"])) <= TOLERANCE


@pytest.fixture(scope="module")
def llama(serve, tiny_root):
    return serve(tiny_root / "llama")


def test_alone_equals_in_a_batch_with_longer_and_shorter_items(llama):
    alone = rewards(llama, [TARGET])[0]
    for batch in ([SHORT, TARGET, LONG], [LONG, LONG, TARGET], [TARGET] + [SHORT] * 9):
        results = rewards(llama, batch)
        assert_same(alone, results[batch.index(TARGET)])


@pytest.mark.parametrize("side", ["left", "right"])
def test_the_tokenizers_padding_side_does_not_matter(serve, tiny_root, tmp_path, llama, side):
    model_dir = tmp_path / f"llama-{side}"
    shutil.copytree(tiny_root / "llama", model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = side
    tok.save_pretrained(model_dir)
    base = serve(model_dir)
    for got, want in zip(rewards(base, [SHORT, TARGET, LONG]), rewards(llama, [SHORT, TARGET, LONG])):
        assert_same(got, want)


def test_concurrent_requests_get_the_same_answers(llama):
    alone = {"t": rewards(llama, [TARGET])[0], "s": rewards(llama, [SHORT])[0], "l": rewards(llama, [LONG])[0]}
    jobs = ["t", "s", "l"] * 16
    items = {"t": TARGET, "s": SHORT, "l": LONG}
    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(lambda k: (k, rewards(llama, [items[k]])[0]), jobs))
    for key, result in results:
        assert_same(result, alone[key])
