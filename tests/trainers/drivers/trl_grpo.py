"""Runs in .venv-trainers: real TRL GRPOTrainer runs against the reward server at R3HF_CLIENT_URL.

Usage: python trl_grpo.py WORKDIR SCENARIO... ; prints one JSON object (scenario -> what TRL logged) on the last
line. Scenarios: text_sync, chat_async, rloo_text, dense_text, dense_chat_other_tokenizer, dense_uniform_beta.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path

import torch
from datasets import Dataset
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, TrainerCallback
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: policy_tokenizers

from policy_tokenizers import metaspace_byte_fallback_bpe  # noqa: E402
from r3hf_client.adapters.trl import (  # noqa: E402
    R3HFDenseGRPOTrainer, R3HFDenseReward, make_async_reward_func, make_reward_func,
)

URL = os.environ["R3HF_CLIENT_URL"]
DEMO_TOKENIZER = Path(__file__).resolve().parents[3] / "service" / "r3hf_server" / "demo_model"
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)
PROMPTS = ["How was your day?", "Tell me about the movie.", "What do you think of the food?",
           "Describe the weather."]


def tiny_policy(workdir: Path, tokenizer_kind: str) -> str:
    """A 2-layer random Llama policy saved with its tokenizer: the RM's own (byte-level BPE) or a Llama-2-style
    Metaspace BPE unlike it."""
    path = workdir / f"policy-{tokenizer_kind}"
    if path.exists():
        return str(path)
    if tokenizer_kind == "rm":
        tokenizer = PreTrainedTokenizerFast.from_pretrained(DEMO_TOKENIZER)
    else:
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=metaspace_byte_fallback_bpe(), unk_token="<unk>",
                                            bos_token="<s>", eos_token="</s>", pad_token="<unk>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def dataset(chat: bool) -> Dataset:
    prompts = [[{"role": "user", "content": p}] for p in PROMPTS] if chat else PROMPTS
    return Dataset.from_dict({"prompt": prompts})


def config(cls: type, workdir: Path, name: str, policy: str) -> object:
    return cls(
        output_dir=str(workdir / name), per_device_train_batch_size=4, num_generations=4, max_completion_length=10,
        max_steps=2, learning_rate=1e-3, logging_steps=1, report_to="none", use_cpu=True, save_strategy="no",
        beta=0.0, seed=0, disable_tqdm=True, generation_kwargs={"suppress_tokens": partial_character_ids(policy)},
    )


def partial_character_ids(policy: str) -> list[int]:
    """Tokens that emit part of a UTF-8 character (byte pieces). A random policy strings them into invalid UTF-8,
    which no projection can align; a trained policy does not, so the test policy is kept from sampling them."""
    tokenizer = PreTrainedTokenizerFast.from_pretrained(policy)
    return [i for i in range(len(tokenizer)) if "\ufffd" in tokenizer.decode([i])]


class DenseRecorder(TrainerCallback):
    """Keeps, per step, what the dense trainer computed for its batch."""

    def __init__(self) -> None:
        self.trainer = None
        self.steps: list[dict] = []

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        dense = self.trainer.last_dense
        advantages = dense["advantages"]
        self.steps.append({
            "prompts": dense["prompts"], "completion_ids": dense["completion_ids"], "rows": dense["rows"],
            "row_sums": [sum(r) for r in dense["rows"]], "scores": dense["scores"],
            "prompt_scores": dense["prompt_scores"], "aligned": dense["aligned"],
            "row_lengths": [len(r) for r in dense["rows"]], "advantages_shape": list(advantages.shape),
            "advantages": advantages.tolist(),
        })


def reward_log(trainer: object) -> list[dict]:
    keep = ("step", "reward", "reward_std", "r3hf/aligned_fraction", "r3hf/dense_return_mean")
    rows = []
    for entry in trainer.state.log_history:  # type: ignore[attr-defined]
        if "reward" in entry:
            rows.append({k: v for k, v in entry.items() if k in keep or k.startswith("rewards/")})
    return rows


def run(name: str, workdir: Path) -> dict:
    dense_options = {
        "dense_text": ("rm", False, {}),
        "dense_chat_other_tokenizer": ("other", True, {}),
        "dense_uniform_beta": ("other", False, {"redistribution": "uniform", "beta": 0.5}),
    }
    if name in dense_options:
        kind, chat, options = dense_options[name]
        recorder = DenseRecorder()
        policy = tiny_policy(workdir, kind)
        trainer = R3HFDenseGRPOTrainer(
            model=policy, reward_funcs=[R3HFDenseReward(URL, **options)],
            args=config(GRPOConfig, workdir, name, policy), train_dataset=dataset(chat), callbacks=[recorder],
        )
        recorder.trainer = trainer
        trainer.train()
        return {"log": reward_log(trainer), "dense_steps": recorder.steps, "options": options, "policy": policy}
    calls: list[dict] = []
    reward = recording({"text_sync": make_reward_func(URL), "chat_async": make_async_reward_func(URL),
                        "rloo_text": make_reward_func(URL)}[name], calls)
    trainer_cls, config_cls = (RLOOTrainer, RLOOConfig) if name.startswith("rloo") else (GRPOTrainer, GRPOConfig)
    policy = tiny_policy(workdir, "rm")
    trainer = trainer_cls(model=policy, reward_funcs=[reward], args=config(config_cls, workdir, name, policy),
                          train_dataset=dataset(name.startswith("chat")))
    trainer.train()
    return {"log": reward_log(trainer), "calls": calls}


def recording(func, calls: list[dict]):  # type: ignore[no-untyped-def]
    """The reward function as TRL sees it (same name, sync or async), keeping what it was given and returned."""
    if inspect.iscoroutinefunction(func):
        async def wrapper(prompts, completions, **kwargs):  # type: ignore[no-untyped-def]
            out = await func(prompts=prompts, completions=completions, **kwargs)
            calls.append({"prompts": prompts, "completions": completions, "rewards": out})
            return out
    else:
        def wrapper(prompts, completions, **kwargs):  # type: ignore[no-untyped-def]
            out = func(prompts=prompts, completions=completions, **kwargs)
            calls.append({"prompts": prompts, "completions": completions, "rewards": out})
            return out
    wrapper.__name__ = func.__name__
    return wrapper


def main() -> None:
    workdir = Path(sys.argv[1])
    report = {name: run(name, workdir) for name in sys.argv[2:]}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
