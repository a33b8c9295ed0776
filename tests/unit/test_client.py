"""The thin client against the real app (fake runner) on 127.0.0.1: results, and errors as typed exceptions."""

import pytest

from live_server import live_server
from r3hf_client import RewardClient
from r3hf_client.errors import InvalidRequestError, TooLargeError, error_from_response
from r3hf_server.api.app import create_app
from r3hf_server.runner.fake import FakeRunner
from r3hf_server.settings import Settings


@pytest.fixture(scope="module")
def client():
    app = create_app(Settings(runner="fake", max_items_per_request=8), FakeRunner(max_length=64))
    with live_server(app) as base_url, RewardClient(base_url) as c:
        yield c


def test_token_rewards_score_info_ready(client):
    items = [{"prompt": "ab", "response": "cd"}, {"prompt_ids": [1, 5], "response_ids": [6]}]
    rewards = client.token_rewards(items, baseline="zero", return_tokens=True)
    assert [len(r.token_rewards) for r in rewards.results] == [2, 1]
    scores = client.score(items)
    assert [r.score for r in scores.results] == [r.score for r in rewards.results]
    assert client.info().fingerprint == rewards.fingerprint
    assert client.ready() is True


def test_server_errors_become_typed_exceptions(client):
    with pytest.raises(InvalidRequestError, match="item 0"):
        client.token_rewards([{"prompt": "x" * 100, "response": "y"}])
    with pytest.raises(TooLargeError):
        client.score([{"prompt": "a", "response": "b"}] * 9)


def test_unknown_error_types_fall_back_to_the_status_code():
    assert isinstance(error_from_response(422, {"error": "x", "error_type": "new_kind"}), InvalidRequestError)
    assert error_from_response(502, None).status_code == 502
