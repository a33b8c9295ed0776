"""The three item forms land rewards on the right tokens of a real (tiny) model and tokenizer."""

from __future__ import annotations

import httpx
import pytest
from transformers import AutoTokenizer

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def llama(serve, tiny_root):
    return serve(tiny_root / "llama")


@pytest.fixture(scope="module")
def tokenizer(tiny_root):
    return AutoTokenizer.from_pretrained(tiny_root / "llama")


def post(base: str, items: list[dict], path: str = "/token_rewards", **options) -> httpx.Response:
    return httpx.post(f"{base}{path}", json={"items": items, **options}, timeout=60)


def result(base: str, item: dict, **options) -> dict:
    r = post(base, [item], **options)
    assert r.status_code == 200, r.text
    return r.json()["results"][0]


def close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= TOLERANCE for x, y in zip(a, b))


def test_ids_form_equals_text_form_when_ids_are_the_texts_tokens(llama, tokenizer):
    prompt, response = "User: How are you?\nAssistant:", " I am fine, thank you."
    enc = tokenizer(prompt + response, return_offsets_mapping=True)
    split = next(i for i, (s, e) in enumerate(enc["offset_mapping"]) if e > len(prompt))
    ids = enc["input_ids"]
    by_text = result(llama, {"prompt": prompt, "response": response})
    by_ids = result(llama, {"prompt_ids": ids[:split], "response_ids": ids[split:]})
    assert close(by_text["token_rewards"], by_ids["token_rewards"])
    assert abs(by_text["score"] - by_ids["score"]) <= TOLERANCE
    assert abs(by_text["prompt_score"] - by_ids["prompt_score"]) <= TOLERANCE


def test_chat_form_equals_a_template_rendered_by_hand(llama, tokenizer):
    messages = [{"role": "user", "content": "How are you?"}, {"role": "assistant", "content": "I am fine."}]
    head, response, tail = "<s><|user|>\nHow are you?</s>\n<|assistant|>\n", "I am fine.", "</s>\n"
    ids = tokenizer(head + response + tail, add_special_tokens=False)["input_ids"]
    n_head = len(tokenizer(head, add_special_tokens=False)["input_ids"])
    n_tail = len(tokenizer(tail, add_special_tokens=False)["input_ids"])
    chat = result(llama, {"messages": messages}, return_tokens=True)
    by_hand = result(llama, {"prompt_ids": ids[:n_head], "response_ids": ids[n_head:]})
    n_resp = len(ids) - n_head - n_tail
    assert chat["num_response_tokens"] == n_resp and chat["template_changed_response"] is False
    # the template's end-of-turn tokens are credited to the last response token
    expected = by_hand["token_rewards"][: n_resp - 1] + [sum(by_hand["token_rewards"][n_resp - 1 :])]
    assert close(chat["token_rewards"], expected)
    assert abs(chat["score"] - by_hand["score"]) <= TOLERANCE
    assert chat["offsets"][0][0] == 0 and chat["offsets"][-1][1] == len(response)


def test_a_template_that_trims_the_response_is_flagged(llama):
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  spaced out  "}]
    out = result(llama, {"messages": messages}, return_tokens=True)
    assert out["template_changed_response"] is True
    assert out["offsets"][-1][1] == len("spaced out")


def test_chat_form_needs_a_final_assistant_turn(llama):
    r = post(llama, [{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]}])
    assert r.status_code == 422 and "assistant" in r.json()["error"]


def test_a_token_straddling_the_boundary_belongs_to_the_response(llama, tokenizer):
    # "Hello world" tokenizes with " w" as one token: with the space in the prompt, it straddles the boundary.
    assert "Ġw" in tokenizer.convert_ids_to_tokens(tokenizer("Hello world")["input_ids"])
    out = result(llama, {"prompt": "Hello ", "response": "world"}, return_tokens=True)
    assert out["tokens"][0] == "Ġw" and out["offsets"][0] == [0, 1]
    assert out["num_response_tokens"] == len(tokenizer("Hello world")["input_ids"]) - 6  # BOS + H,e,l,l,o
    prompt_alone = result(llama, {"prompt": "Hello", "response": ""})
    assert abs(out["prompt_score"] - prompt_alone["score"]) <= TOLERANCE


@pytest.mark.parametrize("response", ["😀 日本語のテキスト", "café naïve 👍🎉", "中文也可以。"])
def test_offsets_cover_multibyte_text(llama, response):
    out = result(llama, {"prompt": "Emoji test", "response": response}, return_tokens=True)
    offsets = out["offsets"]
    assert len(offsets) == len(out["token_rewards"]) == len(out["tokens"]) == out["num_response_tokens"]
    assert offsets[0][0] == 0 and offsets[-1][1] == len(response)
    assert all(0 <= s <= e <= len(response) for s, e in offsets)
    assert [s for s, _ in offsets] == sorted(s for s, _ in offsets)
    covered = {i for s, e in offsets for i in range(s, e)}
    assert covered == set(range(len(response)))


def test_empty_prompt_without_bos_measures_against_zero(llama):
    out = result(llama, {"prompt_ids": [], "response_ids": [40, 41, 42]}, baseline="prompt")
    assert out["prompt_score"] == 0.0
    assert abs(sum(out["token_rewards"]) - out["score"]) <= TOLERANCE


def test_empty_prompt_in_text_form_keeps_the_bos_as_prompt(llama):
    out = result(llama, {"prompt": "", "response": "Hello"}, return_tokens=True)
    assert out["tokens"] == ["H", "e", "l", "l", "o"] and out["prompt_score"] != 0.0


def test_empty_response_is_valid(llama):
    out = result(llama, {"prompt": "How are you?", "response": ""}, return_tokens=True)
    assert out["token_rewards"] == [] and out["num_response_tokens"] == 0 and out["score"] == out["prompt_score"]


def test_a_leading_bos_in_the_text_is_not_doubled(llama):
    plain = post(llama, [{"prompt": "Hello", "response": " world"}]).json()
    bos = post(llama, [{"prompt": "<s>Hello", "response": " world"}]).json()
    assert bos["usage"]["total_tokens"] == plain["usage"]["total_tokens"]
    assert close(bos["results"][0]["token_rewards"], plain["results"][0]["token_rewards"])


def test_sums_and_sparse_through_the_api(llama):
    item = {"prompt": "What a wonderful", "response": " day! I love it."}
    dense = result(llama, item)
    assert abs(sum(dense["token_rewards"]) - (dense["score"] - dense["prompt_score"])) <= 1e-6
    zero = result(llama, item, baseline="zero")
    assert abs(sum(zero["token_rewards"]) - zero["score"]) <= 1e-6
    for options in ({"redistribution": "sparse"}, {"beta": 0.0}):
        sparse = result(llama, item, **options)["token_rewards"]
        assert sparse[:-1] == [0.0] * (len(sparse) - 1) and abs(sparse[-1] - dense["score"]) <= 1e-9
    half = result(llama, item, beta=0.5)["token_rewards"]
    assert close(half[:-1], [0.5 * r for r in dense["token_rewards"][:-1]])


def test_over_length_is_a_422_naming_the_item_and_left_truncation_keeps_the_response(llama, tokenizer):
    long_prompt, response = "The quick brown fox. " * 40, " Thank you."
    r = post(llama, [{"prompt": "a", "response": "b"}, {"prompt": long_prompt, "response": response}])
    assert r.status_code == 422 and "item 1" in r.json()["error"] and "256" in r.json()["error"]
    out = result(llama, {"prompt": long_prompt, "response": response}, truncation="left")
    assert out["truncated"] is True
    ids = tokenizer(long_prompt + response)["input_ids"]
    n_resp = out["num_response_tokens"]
    kept = [ids[0]] + ids[len(ids) - 255 :]  # the BOS stays, the start of the prompt goes
    same = result(llama, {"prompt_ids": kept[:-n_resp], "response_ids": kept[-n_resp:]})
    assert close(out["token_rewards"], same["token_rewards"])


def test_ids_outside_the_vocabulary_are_rejected(llama):
    r = post(llama, [{"prompt_ids": [1], "response_ids": [400]}])
    assert r.status_code == 422 and "400" in r.json()["error"] and "vocabulary" in r.json()["error"]


def test_score_route_matches_token_rewards(llama):
    items = [{"prompt": "Hi", "response": " there"}, {"prompt_ids": [1, 40], "response_ids": [41, 42]}]
    scores = post(llama, items, path="/score").json()["results"]
    rewards = post(llama, items).json()["results"]
    assert [s["score"] for s in scores] == [r["score"] for r in rewards]
