"""The HTTP contract over the fake runner: shapes, options, and the exact status and error body of every bad input."""

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


INVALID, TOO_LARGE, MALFORMED = (422, "invalid_request"), (413, "too_large"), (400, "malformed_request")
ONE = {"prompt": "a", "response": "b"}
# Every bad input, with the one status code and error_type it must get (a 413 <-> 422 swap fails here).
BAD_BODIES = {
    "no items": ({"items": []}, INVALID),
    "missing items": ({}, INVALID),
    "unknown top-level field": ({"items": [ONE], "betta": 0.5}, INVALID),
    "unknown item field": ({"items": [{**ONE, "extra": 1}]}, INVALID),
    "unknown option value": ({"items": [ONE], "redistribution": "dense"}, INVALID),
    "beta out of range": ({"items": [ONE], "beta": 1.5}, INVALID),
    "wrong type": ({"items": [{"prompt": 1, "response": "b"}]}, INVALID),
    "ids as strings": ({"items": [{"prompt_ids": ["1"], "response_ids": [2]}]}, INVALID),
    "negative id": ({"items": [{"prompt_ids": [-1], "response_ids": [2]}]}, INVALID),
    "two forms": ({"items": [{**ONE, "prompt_ids": [1], "response_ids": [2]}]}, INVALID),
    "half a form": ({"items": [{"prompt": "a"}]}, INVALID),
    "no form": ({"items": [{}]}, INVALID),
    "item not an object": ({"items": ["text"]}, INVALID),
    "messages empty": ({"items": [{"messages": []}]}, INVALID),
    "not ending with assistant": ({"items": [{"messages": [{"role": "user", "content": "hi"}]}]}, INVALID),
    "over length": ({"items": [{"prompt": "x" * 100, "response": "y"}]}, INVALID),
    "response alone over length": ({"items": [{"prompt": "", "response": "y" * 100}], "truncation": "left"}, INVALID),
    "id out of vocabulary": ({"items": [{"prompt_ids": [1], "response_ids": [10**6]}]}, INVALID),
    "too many items": ({"items": [ONE] * 65}, TOO_LARGE),
    "body not an object": ([ONE], MALFORMED),
}
RAW_BAD_BODIES = {"malformed json": b"{not json", "empty body": b"", "a bare string": b'"items"'}


@pytest.mark.parametrize("path", ["/token_rewards", "/score"])
@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_input_gets_its_status_and_error_type(fake_client, path, case):
    body, (status, error_type) = BAD_BODIES[case]
    r = post(fake_client, path, body)  # /score has no redistribution options: unknown there too
    assert (r.status_code, r.json().get("error_type")) == (status, error_type), (case, r.text)
    assert set(r.json()) == {"error", "error_type"} and r.json()["error"]


@pytest.mark.parametrize("path", ["/token_rewards", "/score"])
@pytest.mark.parametrize("case", sorted(RAW_BAD_BODIES))
def test_a_body_that_is_not_a_json_object_is_a_400(fake_client, path, case):
    r = fake_client.post(path, content=RAW_BAD_BODIES[case], headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["error_type"]) == MALFORMED, (case, r.text)
    assert set(r.json()) == {"error", "error_type"} and r.json()["error"]


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


def test_batch_metrics_move_with_traffic(fake_client):
    def sample(name):
        for line in fake_client.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    before = {m: sample(m) for m in ("r3hf_batch_size_count", "r3hf_queue_duration_seconds_count",
                                     "r3hf_inference_duration_seconds_count", "r3hf_tokenize_duration_seconds_count",
                                     "r3hf_batch_tokens_sum")}
    fake_client.post("/token_rewards", json={"items": [{"prompt": "ab", "response": "cd"}] * 3})
    after = {m: sample(m) for m in before}
    assert after["r3hf_queue_duration_seconds_count"] - before["r3hf_queue_duration_seconds_count"] == 3
    assert after["r3hf_batch_tokens_sum"] - before["r3hf_batch_tokens_sum"] == 15
    assert after["r3hf_tokenize_duration_seconds_count"] > before["r3hf_tokenize_duration_seconds_count"]
    assert after["r3hf_batch_size_count"] > before["r3hf_batch_size_count"]
    assert after["r3hf_inference_duration_seconds_count"] > before["r3hf_inference_duration_seconds_count"]


def test_timing_headers_say_where_the_time_went():
    """A forward that takes 0.3 s: the request that ran it reports >= 0.3 s of inference; a request queued behind it
    (one item per batch) reports >= 0.2 s of queue wait; each part fits within the total."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from fault_runner import Faults, FaultyRunner
    from r3hf_server.api.app import create_app
    from r3hf_server.runner.fake import FakeRunner
    from r3hf_server.settings import Settings

    runner = FaultyRunner(FakeRunner(max_length=64), Faults())
    app = create_app(Settings(runner="fake", max_batch_size=1, max_batch_tokens=64, max_wait_ms=0), runner)
    with TestClient(app) as client:
        runner.faults.delay_s = 0.3  # after the warm-up
        warm_up_forwards = len(runner.faults.calls)

        def send(text: str) -> dict[str, float]:
            r = client.post("/score", json={"items": [{"prompt": "ab", "response": text}]})
            assert r.status_code == 200, r.text
            names = ("x-total-time", "x-queue-time", "x-tokenization-time", "x-inference-time")
            return {name: float(r.headers[name]) / 1000 for name in names}

        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(send, "cd")
            while len(runner.faults.calls) == warm_up_forwards:  # until the first request's forward has started
                time.sleep(0.005)
            second = pool.submit(send, "ef")
            timings = [first.result(), second.result()]
    for t in timings:
        assert t["x-inference-time"] >= 0.3 and t["x-tokenization-time"] >= 0
        assert t["x-queue-time"] + t["x-inference-time"] + t["x-tokenization-time"] <= t["x-total-time"] + 1e-3
    assert timings[1]["x-queue-time"] >= 0.2 > timings[0]["x-queue-time"]

