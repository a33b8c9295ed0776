"""OpenRLHF's own reward server (openrlhf.cli.serve_rm) as a peer, driven with the same text load as ours.

Set up once with `bash load_tests/peer/setup_openrlhf.sh` (its own venv, .venv-openrlhf). Both servers get the same
OpenRLHF protocol request, POST /get_reward {"query": [...], "prompts": [...], "labels": [...]}.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from pathlib import Path

import httpx
from bench_http import server_process

ROOT = Path(__file__).resolve().parents[1]
PEER_PYTHON = ROOT / ".venv-openrlhf" / "bin" / "python"
STUB = ROOT / "load_tests" / "peer" / "flash_attn_stub"


def peer_available() -> bool:
    return PEER_PYTHON.exists()


@contextmanager
def openrlhf_served(model_dir: str, port: int, batch_size: int):
    """serve_rm in bf16 (its only CPU-capable dtype choice) with SDPA attention and packing off."""
    cmd = [str(PEER_PYTHON), "-m", "openrlhf.cli.serve_rm", "--reward.model_name_or_path", model_dir,
           "--host", "127.0.0.1", "--port", str(port), "--ds.attn_implementation", "sdpa",
           "--ds.param_dtype", "bf16", "--data.max_len", "4096", "--batch_size", str(batch_size)]
    # The peer has no /ready: a tiny /get_reward answering 200 means it is up.
    tiny = {"query": ["a"], "prompts": [""], "labels": [""]}
    probe = lambda base: httpx.post(f"{base}/get_reward", json=tiny, timeout=30)  # noqa: E731
    with server_process(cmd, port, probe, {"PYTHONPATH": str(STUB)}) as base_url:
        yield base_url


def text_queries(tokenizer, samples, seed: int = 3) -> list[tuple[str, str, int]]:
    """(prompt, query, tokens) per sample: texts of the sample's lengths in the benchmark tokenizer's pieces."""
    rng = random.Random(seed)
    pieces = [t for t in range(3, len(tokenizer))]
    out = []
    for s in samples:
        prompt = tokenizer.decode([rng.choice(pieces) for _ in s.prompt_ids])
        response = tokenizer.decode([rng.choice(pieces) for _ in s.response_ids])
        query = prompt + response
        out.append((prompt, query, len(tokenizer(query, add_special_tokens=False)["input_ids"])))
    return out


def get_reward_bodies(queries: list[tuple[str, str, int]], per_request: int) -> tuple[list[dict], list[int]]:
    bodies, tokens = [], []
    for start in range(0, len(queries), per_request):
        chunk = queries[start : start + per_request]
        bodies.append({"query": [q for _, q, _ in chunk], "prompts": [p for p, _, _ in chunk],
                       "labels": [""] * len(chunk)})
        tokens.append(sum(n for _, _, n in chunk))
    return bodies, tokens
