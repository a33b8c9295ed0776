"""OpenRLHF's python-file reward mode: ``--reward.remote_url <path of this file>`` (OpenRLHF 0.11; ``--remote_rm_url``
before 0.11).

    --reward.remote_url "$(python -c 'import r3hf_client.adapters.openrlhf as m; print(m.__file__)')"

OpenRLHF loads the file standalone (``spec_from_file_location``, no package, so this module imports only absolute
names) and calls ``reward_func(queries, prompts, labels)``, since 0.9.1 one sample per call from
``SingleTurnAgentExecutor``. This forwards it to the server (``R3HF_CLIENT_URL``, see ``settings``) with retries, so
API keys work here, unlike the no-code ``--reward.remote_url http://host:port/get_reward`` mode. Scores and the
split of query into prompt and response are the same as the server's ``/get_reward``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from r3hf_client.adapters.protocols import OpenRLHFResponse, check_prompts, openrlhf_reply, split_query
from r3hf_client.adapters.settings import ClientSettings, shared_client


def reward_func(queries: Sequence[str], prompts: Sequence[str] | None = None, labels: Any = None, **kwargs: Any) -> dict:
    """``{"rewards", "scores", "extra_logs"}`` as torch tensors, one entry per query."""
    return as_tensors(openrlhf_rewards(queries, prompts))


def openrlhf_rewards(queries: Sequence[str], prompts: Sequence[str] | None) -> OpenRLHFResponse:
    if not queries:
        return openrlhf_reply([], [], None)
    splits = [split_query(q, p) for q, p in zip(queries, check_prompts(queries, prompts))]
    client = shared_client(ClientSettings.from_env())
    out = client.score([{"prompt": p, "response": r} for p, r, _ in splits], truncation="left")
    return openrlhf_reply(out.results, [matched for _, _, matched in splits], None)


def as_tensors(reply: OpenRLHFResponse) -> dict:
    import torch  # OpenRLHF always has torch; the client itself does not need it

    return {
        "rewards": torch.tensor(reply.rewards, dtype=torch.float32),
        "scores": torch.tensor(reply.scores, dtype=torch.float32),
        "extra_logs": {key: torch.tensor(values, dtype=torch.float32) for key, values in reply.extra_logs.items()},
    }
