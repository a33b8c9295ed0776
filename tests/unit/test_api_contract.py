"""The HTTP contract over the fake runner: shapes, options, and a 4xx with an error body for every bad input."""

import pytest

from r3hf_client.wire import ScoreResponse, TokenRewardsResponse
from r3hf_server.runner.fake import BOS_ID, char_id, token_weight


def post(client, path, body):
    return client.post(path, json=body)


def test_token_rewards_are_the_fake_models_per_token_weights(fake_client):
    r = post(fake_client, "/token_rewards", {"items": [{"prompt": "ab", "response": "cd"}], "return_tokens": True})
    assert r.status_code == 200, r.text
    body = TokenRewardsResponse.model_validate(r.json())
    result = body.results[0]
    assert result.token_rewards == pytest.approx([token_weight(char_id("c")), token_weight(char_id("d"))])
    expected_prompt = token_weight(BOS_ID) + token_weight(char_id("a")) + token_weight(char_id("b"))
    assert result.prompt_score == pytest.approx(expected_prompt)
    assert result.offsets == [(0, 1), (1, 2)]
    assert body.usage.model_dump() == {"num_items": 1, "prompt_tokens": 3, "response_tokens": 2, "total_tokens": 5}
    assert body.fingerprint and body.model == "fake-rm"


def test_results_come_back_in_request_order(fake_client):
    items = [{"prompt": "p" * (i % 7), "response": "r" * (1 + i % 5)} for i in range(20)]
    body = ScoreResponse.model_validate(post(fake_client, "/score", {"items": items}).json())
    assert [r.index for r in body.results] == list(range(20))
    assert [r.num_response_tokens for r in body.results] == [1 + i % 5 for i in range(20)]


def test_a_second_bos_is_never_added(fake_client):
    plain = post(fake_client, "/score", {"items": [{"prompt": "ab", "response": "c"}]}).json()
    with_bos = post(fake_client, "/score", {"items": [{"prompt": "<s>ab", "response": "c"}]}).json()
    assert with_bos["results"][0]["score"] == pytest.approx(plain["results"][0]["score"])
    assert with_bos["usage"]["total_tokens"] == plain["usage"]["total_tokens"] == 4


def test_request_id_is_echoed_and_one_is_made_when_absent(fake_client):
    r = fake_client.post("/score", json={"items": [{"prompt": "a", "response": "b"}]}, headers={"x-request-id": "abc"})
    assert r.headers["x-request-id"] == "abc"
    assert len(fake_client.get("/health").headers["x-request-id"]) == 32


BAD_BODIES = {
    "no items": {"items": []},
    "missing items": {},
    "unknown top-level field": {"items": [{"prompt": "a", "response": "b"}], "betta": 0.5},
    "unknown item field": {"items": [{"prompt": "a", "response": "b", "extra": 1}]},
    "unknown option value": {"items": [{"prompt": "a", "response": "b"}], "redistribution": "dense"},
    "beta out of range": {"items": [{"prompt": "a", "response": "b"}], "beta": 1.5},
    "wrong type": {"items": [{"prompt": 1, "response": "b"}]},
    "ids as strings": {"items": [{"prompt_ids": ["1"], "response_ids": [2]}]},
    "negative id": {"items": [{"prompt_ids": [-1], "response_ids": [2]}]},
    "two forms": {"items": [{"prompt": "a", "response": "b", "prompt_ids": [1], "response_ids": [2]}]},
    "half a form": {"items": [{"prompt": "a"}]},
    "no form": {"items": [{}]},
    "item not an object": {"items": ["text"]},
    "messages empty": {"items": [{"messages": []}]},
    "not ending with assistant": {"items": [{"messages": [{"role": "user", "content": "hi"}]}]},
    "over length": {"items": [{"prompt": "x" * 100, "response": "y"}]},
    "response alone over length": {"items": [{"prompt": "", "response": "y" * 100}], "truncation": "left"},
    "id out of vocabulary": {"items": [{"prompt_ids": [1], "response_ids": [10**6]}]},
    "too many items": {"items": [{"prompt": "a", "response": "b"}] * 65},
}


@pytest.mark.parametrize("path", ["/token_rewards", "/score"])
@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_input_gets_a_4xx_with_an_error_body(fake_client, path, case):
    r = post(fake_client, path, BAD_BODIES[case])  # /score has no redistribution options: unknown there too
    assert 400 <= r.status_code < 500, (case, r.status_code, r.text)
    payload = r.json()
    assert set(payload) == {"error", "error_type"} and payload["error"], payload


def test_malformed_json_is_a_400(fake_client):
    r = fake_client.post("/score", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error_type"] == "malformed_request"


def test_errors_name_the_item_and_the_limit(fake_client):
    items = [{"prompt": "a", "response": "b"}, {"prompt": "x" * 100, "response": "y"}]
    r = post(fake_client, "/token_rewards", {"items": items})
    assert r.status_code == 422
    assert "item 1" in r.json()["error"] and "102 tokens" in r.json()["error"] and "64" in r.json()["error"]


def test_unknown_route_uses_the_error_body(fake_client):
    r = fake_client.get("/nope")
    assert r.status_code == 404 and r.json()["error_type"] == "not_found"


def test_left_truncation_keeps_the_response(fake_client):
    r = post(fake_client, "/token_rewards", {"items": [{"prompt": "x" * 100, "response": "yz"}], "truncation": "left"})
    result = r.json()["results"][0]
    assert r.status_code == 200 and result["truncated"] is True and result["num_response_tokens"] == 2
    assert r.json()["usage"]["total_tokens"] == 64


def test_chat_form_locates_the_response(fake_client):
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]
    r = post(fake_client, "/token_rewards", {"items": [{"messages": messages}], "return_tokens": True})
    result = r.json()["results"][0]
    assert result["num_response_tokens"] == 2 and result["offsets"] == [[0, 1], [1, 2]]
    # the template's trailing newline is a suffix: its score change lands on the last response token
    expected_last = token_weight(char_id("k")) + token_weight(char_id("\n"))
    assert result["token_rewards"][-1] == pytest.approx(expected_last)
    assert result["template_changed_response"] is False


def test_health_ready_info_metrics(fake_client):
    assert fake_client.get("/health").status_code == 200
    assert fake_client.get("/ready").json() == {"status": "ready"}
    info = fake_client.get("/info").json()
    assert info["max_length"] == 64 and info["architecture"] == "FakeRunner"
    fake_client.post("/score", json={"items": [{"prompt": "a", "response": "b"}]})
    text = fake_client.get("/metrics").text
    assert 'r3hf_requests_total{error_type="",route="/score",status="200"}' in text
    assert "r3hf_model_ready 1.0" in text and "r3hf_build_info{" in text


def test_openapi_documents_every_field():
    from r3hf_client.wire import TokenRewardResult, TokenRewardsRequest

    for model in (TokenRewardsRequest, TokenRewardResult):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_timing_headers_and_batch_metrics_move_with_traffic(fake_client):
    def sample(name):
        for line in fake_client.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    before = {m: sample(m) for m in ("r3hf_batch_size_count", "r3hf_queue_duration_seconds_count",
                                     "r3hf_inference_duration_seconds_count", "r3hf_tokenize_duration_seconds_count",
                                     "r3hf_batch_tokens_sum")}
    r = fake_client.post("/token_rewards", json={"items": [{"prompt": "ab", "response": "cd"}] * 3})
    for header in ("x-total-time", "x-queue-time", "x-tokenization-time", "x-inference-time"):
        assert float(r.headers[header]) >= 0.0
    after = {m: sample(m) for m in before}
    assert after["r3hf_queue_duration_seconds_count"] - before["r3hf_queue_duration_seconds_count"] == 3
    assert after["r3hf_batch_tokens_sum"] - before["r3hf_batch_tokens_sum"] == 15
    assert after["r3hf_tokenize_duration_seconds_count"] > before["r3hf_tokenize_duration_seconds_count"]
    assert after["r3hf_batch_size_count"] > before["r3hf_batch_size_count"]
    assert after["r3hf_inference_duration_seconds_count"] > before["r3hf_inference_duration_seconds_count"]
