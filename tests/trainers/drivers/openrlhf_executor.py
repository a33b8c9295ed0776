"""Runs in .venv-trainers: OpenRLHF 0.11's own remote-reward path, ``SingleTurnAgentExecutor.execute``, with the
reward at an HTTP URL (``/get_reward``) and in our python file (loaded by OpenRLHF through spec_from_file_location).

Generation is the one stand-in: a scripted engine returns fixed responses where vLLM would sample (vLLM needs a
GPU); tokenising, decoding the query, the request or the file call, and reading the answer are OpenRLHF's code.
Usage: python openrlhf_executor.py ; prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import io
import json
import os
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import torch
from openrlhf.utils.agent import SingleTurnAgentExecutor
from transformers import PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parents[3]
ADAPTER_FILE = ROOT / "client" / "r3hf_client" / "adapters" / "openrlhf.py"
DEMO_MODEL = ROOT / "service" / "r3hf_server" / "demo_model"
SAMPLES = [("Q: How was your day? A:", " It was wonderful."), ("Q: How was the food? A:", " Cold and awful."),
           ("Q: Any news? A:", " Nothing much.")]


class ScriptedEngine:
    """Answers ``generate`` like vLLM's engine wrapper does, with a fixed continuation per prompt."""

    def __init__(self, tokenizer: PreTrainedTokenizerFast) -> None:
        self.replies = {
            tuple(tokenizer(p, add_special_tokens=False)["input_ids"]):
                tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            for p, r in SAMPLES
        }

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):  # type: ignore[no-untyped-def]
        ids = self.replies[tuple(prompt_token_ids)]
        return SimpleNamespace(outputs=[SimpleNamespace(token_ids=ids, finish_reason="stop", logprobs=None)])


def as_float(value: object) -> float:
    return float(torch.as_tensor(value).flatten()[0])


async def run(endpoint: str, tokenizer: PreTrainedTokenizerFast) -> list[dict]:
    executor = SingleTurnAgentExecutor(endpoint)
    engine, params = ScriptedEngine(tokenizer), SimpleNamespace(max_tokens=32, logprobs=None)
    outputs = await asyncio.gather(*[
        executor.execute(prompt, "", params, max_length=128, hf_tokenizer=tokenizer, llm_engine=engine)
        for prompt, _ in SAMPLES
    ])
    report = []
    for out in outputs:
        reward = out["reward"]
        report.append({
            "query": tokenizer.decode(out["observation_tokens"], skip_special_tokens=False),
            "prompt": out["prompt"],
            "reward": None if reward is None else as_float(reward),
            # What OpenRLHF's samples generator builds from the answer: one reward per sample.
            "reward_numel": None if reward is None else int(torch.tensor([reward]).numel()),
            "score": None if out["scores"] is None else as_float(out["scores"]),
            "extra_logs": {k: as_float(v) for k, v in out["extra_logs"].items()},
            "from_file": executor.reward_func is not None,
        })
    return report


def ppo_ray_parser() -> argparse.ArgumentParser:
    """The argument parser that ``python -m openrlhf.cli.train_ppo_ray`` builds: the statements of its ``__main__``
    block before the first ``parse_args()``, run on their own (importing the module needs vLLM and DeepSpeed)."""
    import openrlhf

    path = Path(openrlhf.__file__).parent / "cli" / "train_ppo_ray.py"
    main_block = next(node for node in ast.parse(path.read_text()).body
                      if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test))
    statements = []
    for statement in main_block.body:
        if "parse_args" in ast.unparse(statement):
            break
        statements.append(statement)
    namespace: dict = {"argparse": argparse, "os": os, "datetime": datetime}  # the stdlib names it uses
    exec(compile(ast.Module(body=statements, type_ignores=[]), str(path), "exec"), namespace)
    return namespace["parser"]


def accepts(parser: argparse.ArgumentParser, argv: list[str]) -> bool:
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            parser.parse_args(argv)
    except SystemExit:
        return False
    return True


def main() -> None:
    tokenizer = PreTrainedTokenizerFast.from_pretrained(DEMO_MODEL)
    url = os.environ["R3HF_CLIENT_URL"]
    report = {
        "http": asyncio.run(run(f"{url}/get_reward", tokenizer)),
        "python_file": asyncio.run(run(str(ADAPTER_FILE), tokenizer)),
    }
    parser = ppo_ray_parser()
    report["parser"] = {flag: accepts(parser, [flag, f"{url}/get_reward"])
                        for flag in ("--reward.remote_url", "--remote_rm_url")}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
