"""API keys: fail-closed except the public paths, Bearer or Basic (key as password), 401 with the error body,
constant-time comparison, keys never in logs or /info."""

from __future__ import annotations

import base64
import logging

import pytest

from faulty_apps import faulty_app, in_process, item
from r3hf_server.api.auth import key_matches, presented_key
from r3hf_server.cli import build_parser

KEY, OTHER_KEY = "sk-r3hf-test-0123456789", "sk-second-key"


def basic(password: str, user: str = "r3hf") -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def secured(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# trainers\n{OTHER_KEY}\n\n")
    app, _ = faulty_app(api_keys=KEY, api_keys_file=str(keys_file), public_paths="/health,/ready,/metrics,/play*")
    with in_process(app) as client:
        yield client


@pytest.mark.parametrize("path", ["/score", "/token_rewards", "/get_reward", "/info", "/openapi.json", "/nope"])
@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong"}, {"authorization": f"Token {KEY}"},
                                     basic("wrong"), {"authorization": "Basic !!notbase64"}])
def test_every_non_public_path_is_closed_without_a_valid_key(secured, path, headers):
    r = secured.post(path, json={"items": [item()]}, headers=headers) if path != "/info" else secured.get(
        path, headers=headers)
    assert r.status_code == 401, (path, headers, r.status_code)
    assert r.json()["error_type"] == "unauthorized" and "Bearer" in r.json()["error"]
    assert r.headers["www-authenticate"].startswith("Bearer")  # never Basic: browsers would pop up a login dialog


def test_public_paths_need_no_key(secured):
    for path in ("/health", "/ready", "/metrics"):
        assert secured.get(path).status_code == 200
    assert secured.get("/playground").status_code != 401  # public by prefix: it reaches routing


@pytest.mark.parametrize("headers", [{"authorization": f"Bearer {KEY}"}, {"authorization": f"bearer {OTHER_KEY}"},
                                     basic(KEY), basic(OTHER_KEY, user="")])
def test_a_valid_key_opens_every_route(secured, headers):
    assert secured.post("/score", json={"items": [item()]}, headers=headers).status_code == 200
    r = secured.post("/get_reward", json={"query": ["pa"], "prompts": ["p"]}, headers=headers)
    assert r.status_code == 200 and len(r.json()["rewards"]) == 1
    info = secured.get("/info", headers=headers)
    assert info.status_code == 200 and KEY not in info.text and OTHER_KEY not in info.text


def test_unauthorized_requests_are_counted(secured):
    secured.post("/score", json={"items": [item()]})
    assert 'status="401"' in secured.get("/metrics").text


def test_key_parsing_and_comparison():
    assert presented_key(f"Bearer {KEY}") == KEY.encode()
    assert presented_key(basic(KEY)["authorization"]) == KEY.encode()
    assert presented_key("Bearer ") is None and presented_key("Digest x") is None
    keys = [b"aaaa", b"bbbb"]
    assert key_matches(b"bbbb", keys) and not key_matches(b"bbb", keys) and not key_matches(b"", keys)


def test_without_keys_everything_is_open():
    app, _ = faulty_app()
    with in_process(app) as client:
        assert client.post("/score", json={"items": [item()]}).status_code == 200


def test_keys_never_reach_the_logs(monkeypatch, caplog):
    import r3hf_server.cli as cli

    served = {}
    monkeypatch.setattr("r3hf_server.api.serving.serve_app", lambda app, *a: served.setdefault("app", app))
    monkeypatch.setenv("R3HF_API_KEYS", KEY)
    caplog.set_level(logging.INFO)
    args = vars(build_parser().parse_args(["serve", "--runner", "fake"]))
    args.pop("command")
    cli.serve(args)
    assert "settings:" in caplog.text and "api_keys" in caplog.text
    assert KEY not in caplog.text and "**********" in caplog.text


def test_a_trainer_that_cannot_set_headers_puts_the_key_in_the_url(serve_faulty):
    """OpenRLHF posts with requests to --remote_rm_url: credentials in the URL become a Basic header."""
    requests = pytest.importorskip("requests")
    base_url, _, _ = serve_faulty(api_keys=KEY)
    host = base_url.removeprefix("http://")
    body = {"query": ["How are you? Fine."], "prompts": ["How are you?"], "labels": [""]}
    assert requests.post(f"{base_url}/get_reward", json=body, timeout=30).status_code == 401
    r = requests.post(f"http://r3hf:{KEY}@{host}/get_reward", json=body, timeout=30)
    assert r.status_code == 200 and len(r.json()["rewards"]) == 1
