"""The embedded demo RM: served with no --model, it prefers positive responses and credits the rated words."""

from __future__ import annotations

import httpx
import pytest

from r3hf_server.settings import DEMO_MODEL_DIR

PROMPT = "How was your day?"
TWINS = [
    (" It was a wonderful day.", " It was a terrible day."),
    (" The movie was great and I loved it.", " The movie was awful and I hated it."),
    (" I feel happy and calm.", " I feel sad and angry."),
]


@pytest.fixture(scope="module")
def demo(serve):
    return serve(DEMO_MODEL_DIR)


def rewards(base: str, response: str) -> dict:
    body = {"items": [{"prompt": PROMPT, "response": response}], "return_tokens": True}
    return httpx.post(f"{base}/token_rewards", json=body, timeout=60).json()["results"][0]


def word_at(response: str, offsets: list[int]) -> str:
    """The whole word (letters) around a token's span."""
    start, end = offsets
    while start < end and not response[start].isalpha():  # byte-level tokens carry their leading space
        start += 1
    while start > 0 and response[start - 1].isalpha():
        start -= 1
    while end < len(response) and response[end].isalpha():
        end += 1
    return response[start:end].strip(" .,")


def test_the_demo_model_is_small_and_committed():
    size = sum(p.stat().st_size for p in DEMO_MODEL_DIR.iterdir())
    assert (DEMO_MODEL_DIR / "model.safetensors").exists() and size <= 10 * 2**20


@pytest.mark.parametrize("positive,negative", TWINS)
def test_a_positive_response_outscores_its_negative_twin(demo, positive, negative):
    assert rewards(demo, positive)["score"] > rewards(demo, negative)["score"]


@pytest.mark.parametrize(
    "response,extreme,word",
    [(TWINS[0][0], max, "wonderful"), (TWINS[0][1], min, "terrible"), (TWINS[1][0], max, "great")],
)
def test_the_most_rewarded_token_lies_in_the_rated_word(demo, response, extreme, word):
    out = rewards(demo, response)
    best = extreme(range(len(out["token_rewards"])), key=lambda i: out["token_rewards"][i])
    assert word_at(response, out["offsets"][best]) == word
