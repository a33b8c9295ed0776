"""The experiment's arms and how each builds its TRL trainer.

(a) sparse: plain GRPO on the sequence score. (b) R3HF dense credit at beta 1.0 and 0.5, (c) uniform and
(d) attention (ABC) credit: per-token rewards from the server's ``/token_rewards`` turned into (B, T) advantages by
the client's TRL dense-credit trainer. All arms get the same sequence-score reward function, so TRL's logged
``reward`` is the same quantity (the RM's score of the sampled completion) in every arm.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arm:
    name: str
    redistribution: str | None  # None = sparse GRPO; else the /token_rewards strategy
    beta: float = 1.0  # Eq. 7 mix with the sparse reward (1 = pure strategy)
    label: str = ""


REWARD_NAME = "demo_rm_score"  # one name in every arm, so TRL's reward logs line up

ARMS: dict[str, Arm] = {arm.name: arm for arm in (
    Arm("sparse", None, label="(a) sparse GRPO"),
    Arm("r3hf", "r3hf", 1.0, label="(b) R3HF β=1.0"),
    Arm("r3hf_beta0.5", "r3hf", 0.5, label="(b) R3HF β=0.5"),
    Arm("uniform", "uniform", 1.0, label="(c) uniform"),
    Arm("attention", "attention", 1.0, label="(d) attention (ABC)"),
)}


def make_trainer(arm: Arm, base_url: str, *, model, args, tokenizer, dataset, on_scored, callbacks):
    """The arm's trainer. ``on_scored(prompts, completions, scores)`` sees every scored batch (for samples)."""
    common = dict(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=callbacks)
    if arm.redistribution is None:
        from r3hf_client.adapters.trl import make_reward_func
        from trl import GRPOTrainer

        score = make_reward_func(base_url, name=REWARD_NAME)

        def sequence_score(prompts, completions, **kwargs):
            scores = score(prompts=prompts, completions=completions, **kwargs)
            on_scored(prompts, completions, scores)
            return scores

        sequence_score.__name__ = REWARD_NAME
        return GRPOTrainer(reward_funcs=[sequence_score], **common)

    from r3hf_client.adapters.trl import R3HFDenseGRPOTrainer, R3HFDenseReward

    class ObservedDenseReward(R3HFDenseReward):
        def __call__(self, prompts, completions, **kwargs):
            scores = super().__call__(prompts, completions, **kwargs)
            on_scored(prompts, completions, scores)
            return scores

    dense = ObservedDenseReward(base_url, redistribution=arm.redistribution, beta=arm.beta, name=REWARD_NAME)
    return R3HFDenseGRPOTrainer(reward_funcs=[dense], **common)
