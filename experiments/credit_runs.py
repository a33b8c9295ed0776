"""One GRPO run of the credit experiment: TRL's real GRPOTrainer, the cached SFT policy, the served demo RM.

Every arm trains with the same GRPOConfig, prompts, seed and sequence-score reward function; arms differ only in
how the trainer turns the reward into advantages (sparse GRPO, or per-token credit from ``/token_rewards``).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from credit_arms import Arm, make_trainer
from credit_policy import rl_prompts

# What each step keeps from TRL's logs: name in our JSON -> TRL's log key.
LOGGED = {"reward": "reward", "reward_std": "reward_std", "kl": "kl", "entropy": "entropy",
          "completion_length": "completions/mean_length", "clipped_ratio": "completions/clipped_ratio"}
SAMPLES_PER_SNAPSHOT = 4


@dataclass(frozen=True)
class RunConfig:
    steps: int = 40
    prompts_per_step: int = 4
    generations: int = 8  # GRPO group size; a step trains on prompts_per_step * generations completions
    max_completion_length: int = 24
    learning_rate: float = 1e-3
    kl_beta: float = 0.02  # TRL's `beta`: the KL-to-reference penalty, > 0 so the reference model is kept and KL logged
    temperature: float = 1.0
    threads: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunRecord:
    arm: str
    seed: int
    seconds: float = 0.0
    curves: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in LOGGED})
    samples: dict[str, list[dict]] = field(default_factory=dict)


def sample_keeper(record: RunRecord):
    """Keeps a few (prompt, completion, score) of the first and of the latest scored batch."""

    def keep(prompts, completions, scores) -> None:
        shown = [{"prompt": p.strip(), "completion": c, "score": round(float(s), 3)}
                 for p, c, s in list(zip(prompts, completions, scores))[:SAMPLES_PER_SNAPSHOT]]
        record.samples.setdefault("start", shown)
        record.samples["end"] = shown

    return keep


def metrics_callback(record: RunRecord):
    from transformers import TrainerCallback

    class KeepStepMetrics(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "reward" not in logs:
                return
            for name, key in LOGGED.items():
                value = logs.get(key)
                record.curves[name].append(float(value) if value is not None else math.nan)

    return KeepStepMetrics()


def run_one(arm: Arm, seed: int, config: RunConfig, base_url: str, policy_dir: Path, work_dir: Path) -> RunRecord:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, set_seed
    from trl import GRPOConfig

    torch.set_num_threads(config.threads)
    set_seed(seed)
    record = RunRecord(arm=arm.name, seed=seed)
    prompts = rl_prompts(policy_dir)
    rows = config.steps * config.prompts_per_step
    dataset = Dataset.from_dict({"prompt": [prompts[i % len(prompts)] for i in range(rows)]})
    args = GRPOConfig(
        output_dir=str(work_dir / f"{arm.name}-seed{seed}"), max_steps=config.steps, seed=seed, data_seed=seed,
        per_device_train_batch_size=config.prompts_per_step * config.generations, num_generations=config.generations,
        max_completion_length=config.max_completion_length, learning_rate=config.learning_rate, beta=config.kl_beta,
        temperature=config.temperature, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
        disable_tqdm=True, dataloader_num_workers=0, lr_scheduler_type="constant", warmup_steps=0,
    )
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    trainer = make_trainer(arm, base_url, model=model, args=args, tokenizer=tokenizer, dataset=dataset,
                           on_scored=sample_keeper(record), callbacks=[metrics_callback(record)])
    trainer.remove_callback(PrinterCallback)  # the per-step dict print; the curves are kept by metrics_callback
    started = time.perf_counter()
    trainer.train()
    record.seconds = time.perf_counter() - started
    return record
