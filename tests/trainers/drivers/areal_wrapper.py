"""Runs in .venv-trainers: our reward_fn inside AReaL 1.0.4's AsyncRewardWrapper (its process pool, timeout and
retries), the way AReaL's rollout workflows call it, against the server at R3HF_CLIENT_URL.

Usage: python areal_wrapper.py ; prints one JSON object on the last line.
"""

from __future__ import annotations

import asyncio
import json

from areal.api.reward_api import AsyncRewardWrapper

from r3hf_client.adapters.areal import reward_fn

SAMPLES = [("How was your day?", " It was wonderful."), ("How was the food?", " Cold and awful."),
           ("Any news?", " Nothing much.")]


async def run() -> list[float]:
    wrapper = AsyncRewardWrapper(reward_fn, timeout_seconds=15, max_workers=2)
    return list(await asyncio.gather(*[
        wrapper(prompt, completion, [1, 2, 3], [4, 5], answer="unused dataset column")
        for prompt, completion in SAMPLES
    ]))


def main() -> None:
    rewards = asyncio.run(run())
    print(json.dumps({"samples": [list(s) for s in SAMPLES], "rewards": rewards,
                      "types": [type(r).__name__ for r in rewards]}))


if __name__ == "__main__":
    main()
