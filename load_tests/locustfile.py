"""Locust scenarios shaped like the trainers that call a reward server.

- SingleItemTrainer: one prompt + response per request to /token_rewards (OpenRLHF's remote RM since v0.9.1).
- BatchedTrainer: a worker's whole micro-batch in one /score request (verl / TRL batch reward functions).
- GRPOGroupTrainer: one prompt with a group of sampled responses to /token_rewards (GRPO / RLOO groups).

Every response is checked (status 200, one result per item, finite numbers), and the server's timing headers are
collected so the runner can split latency into queue wait, tokenization and forward. Run it through
load_tests/run_load_test.py, which starts a server on 127.0.0.1 and bounds users and time; the summary of the
timing headers goes to the JSON file named by R3HF_LOAD_TIMINGS.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import defaultdict

from locust import HttpUser, between, events, task

WORDS = (
    "the reward model reads every prefix of the response and scores it once per position so each token gets "
    "credit for the change it made wonderful terrible calm happy sad bright dull kind cruel great awful fine"
).split()
GROUP_SIZE = int(os.environ.get("R3HF_LOAD_GROUP_SIZE", "8"))
BATCH_SIZE = int(os.environ.get("R3HF_LOAD_BATCH_SIZE", "16"))
TIMING_HEADERS = ("x-queue-time", "x-tokenization-time", "x-inference-time", "x-total-time")

# scenario -> header -> milliseconds, one entry per successful request
timings: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))


def sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def item(rng: random.Random, prompt: str | None = None) -> dict:
    return {"prompt": prompt or sentence(rng, 8, 24) + "?", "response": " " + sentence(rng, 4, 40) + "."}


class RewardTrainer(HttpUser):
    abstract = True
    wait_time = between(0.01, 0.05)

    def on_start(self) -> None:
        self.rng = random.Random(id(self))

    def score(self, route: str, items: list[dict], scenario: str) -> None:
        with self.client.post(route, json={"items": items}, name=scenario, catch_response=True) as response:
            problem = check(response, len(items))
            if problem:
                response.failure(problem)
                return
            for header in TIMING_HEADERS:
                timings[scenario][header].append(float(response.headers[header]))


def check(response, expected_items: int) -> str | None:  # type: ignore[no-untyped-def]
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    results = response.json().get("results", [])
    if len(results) != expected_items:
        return f"{len(results)} results for {expected_items} items"
    if not all(math.isfinite(r["score"]) for r in results):
        return "a non-finite score"
    missing = [h for h in TIMING_HEADERS if h not in response.headers]
    return f"missing timing headers {missing}" if missing else None


class SingleItemTrainer(RewardTrainer):
    @task
    def one_item(self) -> None:
        self.score("/token_rewards", [item(self.rng)], "single item /token_rewards")


class BatchedTrainer(RewardTrainer):
    @task
    def micro_batch(self) -> None:
        self.score("/score", [item(self.rng) for _ in range(BATCH_SIZE)], f"batch of {BATCH_SIZE} /score")


class GRPOGroupTrainer(RewardTrainer):
    @task
    def group(self) -> None:
        prompt = sentence(self.rng, 8, 24) + "?"
        items = [item(self.rng, prompt) for _ in range(GROUP_SIZE)]
        self.score("/token_rewards", items, f"GRPO group of {GROUP_SIZE} /token_rewards")


@events.quitting.add_listener
def write_timings(environment, **_kwargs) -> None:  # type: ignore[no-untyped-def]
    path = os.environ.get("R3HF_LOAD_TIMINGS")
    if path:
        with open(path, "w") as out:
            json.dump({scenario: dict(headers) for scenario, headers in timings.items()}, out)
