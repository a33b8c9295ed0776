"""``r3hf explain`` and ``r3hf score`` over the fake runner: in-process and against a server on 127.0.0.1."""

from __future__ import annotations

import json
import re

import pytest

from fastapi.testclient import TestClient

from live_server import live_server
from r3hf_server.api.app import create_app
from r3hf_server.cli import main
from r3hf_server.runner.fake import FakeRunner
from r3hf_server.settings import Settings

ITEMS = [
    {"prompt": "Hi", "response": " there!"},
    {"prompt": "How was it?", "response": " Fine."},
    {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]},
    {"prompt_ids": [1, 5, 6], "response_ids": [7, 8]},
    {"prompt": "", "response": "no prompt"},
]
BACKGROUND = re.compile(r"\x1b\[48;2;\d+;\d+;\d+m")


@pytest.fixture(scope="module")
def server_url():
    with live_server(create_app(Settings(runner="fake"), FakeRunner())) as url:
        yield url


def reference(items, **options):
    """What the API itself answers for these items, over a fresh app on the same fake runner."""
    with TestClient(create_app(Settings(runner="fake"), FakeRunner())) as client:
        body = {"items": items, "return_tokens": True, **options}
        return client.post("/token_rewards", json=body).json()["results"]


def test_explain_colours_every_token_and_prints_the_api_numbers(capsys):
    code = main(["explain", "--runner", "fake", "--prompt", "Hi", "--response", " there!", "--color", "always"])
    out = capsys.readouterr().out
    expected = reference([ITEMS[0]])[0]
    assert code == 0
    assert len(BACKGROUND.findall(out)) == len(expected["token_rewards"]) == len(" there!")
    assert f"score {expected['score']:+.4f}" in out
    for reward in expected["token_rewards"]:
        assert f"{reward:+.4f}" in out


def test_explain_without_colour_brackets_tokens_and_takes_chat_messages(capsys):
    messages = json.dumps(ITEMS[2]["messages"])
    assert main(["explain", "--runner", "fake", "--messages", messages, "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out and "[A][.]" in out


def test_explain_against_a_server_returns_the_servers_result(capsys, server_url):
    args = ["explain", "--url", server_url, "--prompt", "Hi", "--response", " there!", "--json",
            "--redistribution", "attention", "--beta", "0.5"]
    assert main(args) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == reference([ITEMS[0]], redistribution="attention", beta=0.5)[0]


def test_explain_refuses_conflicting_item_flags():
    with pytest.raises(SystemExit, match="not both"):
        main(["explain", "--runner", "fake", "--messages", "[]", "--response", "x"])


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def read_results(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_results_match_the_api(results):
    expected = reference(ITEMS)
    assert [r["index"] for r in results] == list(range(len(ITEMS)))
    for got, want in zip(results, expected):
        assert got["score"] == want["score"] and got["token_rewards"] == want["token_rewards"]


@pytest.mark.parametrize("backend", ["in-process", "server"])
def test_score_writes_one_result_per_item_with_its_input_index(tmp_path, server_url, backend):
    source, target = tmp_path / "items.jsonl", tmp_path / "results.jsonl"
    write_jsonl(source, ITEMS)
    where = ["--runner", "fake"] if backend == "in-process" else ["--url", server_url]
    assert main(["score", str(source), str(target), "--chunk-size", "2", "--no-progress", *where]) == 0
    assert_results_match_the_api(read_results(target))


def test_score_resumes_after_an_interruption_and_skips_indices_already_written(tmp_path, capsys):
    source, target = tmp_path / "items.jsonl", tmp_path / "results.jsonl"
    write_jsonl(source, ITEMS)
    assert main(["score", str(source), str(target), "--runner", "fake", "--no-progress"]) == 0
    lines = target.read_text().splitlines(keepends=True)
    target.write_text(lines[0] + lines[3] + lines[4][:10])  # two results kept, then a line cut mid-write
    capsys.readouterr()
    assert main(["score", str(source), str(target), "--runner", "fake", "--no-progress"]) == 0
    assert "2 already in" in capsys.readouterr().err
    results = sorted(read_results(target), key=lambda r: r["index"])
    assert_results_match_the_api(results)
    assert main(["score", str(source), str(target), "--runner", "fake", "--no-progress"]) == 0
    assert len(read_results(target)) == len(ITEMS), "a finished file is left as it is"


def test_score_stops_on_a_bad_item_keeping_earlier_chunks(tmp_path, capsys):
    source, target = tmp_path / "items.jsonl", tmp_path / "results.jsonl"
    write_jsonl(source, ITEMS[:2] + [{"prompt": "only a prompt"}])
    assert main(["score", str(source), str(target), "--runner", "fake", "--chunk-size", "2", "--no-progress"]) == 1
    assert "input indices 2..2" in capsys.readouterr().err
    assert [r["index"] for r in read_results(target)] == [0, 1]
