"""Runs in .venv-trainers: verl 0.9's real reward loop on a real DataProto, against the server at R3HF_CLIENT_URL.

Two scenarios go through RewardLoopManager on a local Ray (its RewardLoopWorker actor, load_reward_manager,
load_extern_object, assemble_rm_scores); the other two run the same RewardLoopWorker in this process and assemble
rm_scores with the manager class's classmethod, as RewardLoopManager.compute_rm_score does (each Ray actor start
re-imports verl, which is most of this driver's time).

Usage: python verl_reward_loop.py WORKDIR ; prints one JSON object on the last line: per scenario, the rm_scores
verl assembled, the valid response lengths, and the reward_extra_info it collected.
The config is verl's own ppo_trainer.yaml composed with Hydra, so a key that 0.9 does not know fails here.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import ray
import torch
import verl
from hydra import compose, initialize_config_dir
from transformers import PreTrainedTokenizerFast
from verl import DataProto
from verl.experimental.reward_loop import RewardLoopManager, RewardLoopWorker
from verl.trainer.ppo.reward import resolve_reward_manager_cls
from verl.utils.ray_utils import get_event_loop

ADAPTERS = Path(__file__).resolve().parents[3] / "client" / "r3hf_client" / "adapters"
DEMO_MODEL = Path(__file__).resolve().parents[3] / "service" / "r3hf_server" / "demo_model"
SAMPLES = [("How was your day?", " It was wonderful, thank you."), ("Describe the food.", " Cold and awful."),
           ("Any news?", " Nothing much."), ("Rate the film.", " A masterpiece!")]
WIDTH = 16


def config(policy: str, overrides: list[str]):  # type: ignore[no-untyped-def]
    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose("ppo_trainer", overrides=[f"actor_rollout_ref.model.path={policy}", "reward.num_workers=1",
                                                 *overrides])


def data_proto(tokenizer: PreTrainedTokenizerFast) -> DataProto:
    """What verl's rollout hands the reward loop: left-padded prompts, right-padded responses ending in EOS."""
    pad = tokenizer.pad_token_id
    prompts, responses, masks = [], [], []
    for prompt, response in SAMPLES:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        prompts.append([pad] * (WIDTH - len(p)) + p)
        responses.append(r + [pad] * (WIDTH - len(r)))
        masks.append([0] * (WIDTH - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (WIDTH - len(r)))
    prompts_t, responses_t = torch.tensor(prompts), torch.tensor(responses)
    return DataProto.from_dict(
        tensors={"prompts": prompts_t, "responses": responses_t, "input_ids": torch.cat([prompts_t, responses_t], 1),
                 "attention_mask": torch.tensor(masks)},
        non_tensors={
            "data_source": np.array(["r3hf_demo"] * len(SAMPLES), dtype=object),
            "reward_model": np.array([{"ground_truth": None} for _ in SAMPLES], dtype=object),
            "extra_info": np.array([{"prompt": p} for p, _ in SAMPLES], dtype=object),
        },
    )


def samples(data: DataProto, tokenizer: PreTrainedTokenizerFast) -> list[dict]:
    """Each sample's valid ids and the texts verl's managers decode from them."""
    out = []
    for i, (prompt, _) in enumerate(SAMPLES):
        mask = data.batch["attention_mask"][i]
        prompt_ids = data.batch["prompts"][i][mask[:WIDTH].bool()].tolist()
        response_ids = data.batch["responses"][i][: int(mask[WIDTH:].sum())].tolist()
        out.append({"prompt": prompt, "prompt_text": tokenizer.decode(prompt_ids, skip_special_tokens=False),
                    "response_text": tokenizer.decode(response_ids, skip_special_tokens=True),
                    "response_ids": response_ids})
    return out


def scenarios() -> dict[str, list[str]]:
    sequence = ["reward.custom_reward_function.name=compute_score"]
    dense = ["reward.reward_manager.source=importlib", "reward.reward_manager.name=R3HFRewardManager"]
    return {
        "compute_score_file": [f"reward.custom_reward_function.path={ADAPTERS / 'verl.py'}", *sequence],
        "compute_score_pkg": ["reward.custom_reward_function.path=pkg://r3hf_client.adapters.verl", *sequence],
        "dense_manager_file": [f"reward.reward_manager.module.path={ADAPTERS / 'verl_dense.py'}", *dense],
        "dense_manager_pkg": ["reward.reward_manager.module.path=pkg://r3hf_client.adapters.verl_dense", *dense],
    }


THROUGH_RAY = ("compute_score_file", "dense_manager_pkg")


def run(name: str, overrides: list[str], data: DataProto) -> dict:
    cfg = config(str(DEMO_MODEL), overrides)
    if name in THROUGH_RAY:
        manager = RewardLoopManager(cfg)
        try:
            out = manager.compute_rm_score(data)
        finally:
            for worker in manager.reward_loop_workers:
                ray.kill(worker)
        manager_cls, rm_scores, extra = manager.reward_manager_cls, out.batch["rm_scores"], out.non_tensor_batch
    else:
        worker = RewardLoopWorker(cfg)
        outputs = get_event_loop().run_until_complete(worker.compute_score_batch(data))
        manager_cls = resolve_reward_manager_cls(cfg)
        rm_scores = manager_cls.assemble_rm_scores(data, [o["reward_score"] for o in outputs])
        extra = {k: [o["reward_extra_info"][k] for o in outputs] for k in outputs[0]["reward_extra_info"]}
    prompt_width = data.batch["prompts"].shape[1]
    return {
        "via": "RewardLoopManager (Ray)" if name in THROUGH_RAY else "RewardLoopWorker (in process)",
        "manager_class": manager_cls.__name__,
        "rm_scores": rm_scores.tolist(),
        "valid_lengths": data.batch["attention_mask"][:, prompt_width:].sum(-1).tolist(),
        "reward_extra_info": {k: np.asarray(v).tolist() for k, v in extra.items()},
    }


def main() -> None:
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2, log_to_driver=False,
             runtime_env={"env_vars": {"R3HF_CLIENT_URL": os.environ["R3HF_CLIENT_URL"]}})
    try:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(DEMO_MODEL)
        data = data_proto(tokenizer)
        names = sys.argv[2:] or list(scenarios())
        report = {name: run(name, scenarios()[name], data) for name in names}
        report["samples"] = samples(data, tokenizer)
        report["response_width"] = WIDTH
    finally:
        ray.shutdown()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
