"""``R3HFDenseGRPOTrainer``: TRL's GRPOTrainer with per-token advantages (the estimator is in ``trl_dense``).

Imports trl and torch; ``r3hf_client.adapters.trl`` and ``trl_dense`` reach it only when the class is asked for.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from r3hf_client.adapters.trl_dense import R3HFDenseReward, dense_rows, group_advantages, returns_to_go


@lru_cache(maxsize=1)
def build_trainer_class() -> type:
    import torch
    from trl import GRPOTrainer

    class R3HFDenseGRPOTrainer(GRPOTrainer):
        """GRPOTrainer whose advantages are (B, T): group-normalised returns-to-go of R3HF per-token rewards.

        Takes GRPOTrainer's arguments; exactly one of ``reward_funcs`` must be an ``R3HFDenseReward``. Other reward
        functions add their weighted score on the completion's last token. ``scale_rewards`` ("group", "batch",
        "none") is honoured; ``multi_objective_aggregation`` must be "sum_then_normalize" (the default).
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            dense = [i for i, f in enumerate(self.reward_funcs) if isinstance(f, R3HFDenseReward)]
            if len(dense) != 1:
                raise ValueError(f"R3HFDenseGRPOTrainer needs one R3HFDenseReward in reward_funcs, got {len(dense)}")
            if self.multi_objective_aggregation != "sum_then_normalize":
                raise ValueError('R3HFDenseGRPOTrainer sums rewards per token: multi_objective_aggregation must be '
                                 '"sum_then_normalize"')
            self._dense_index = dense[0]
            self.dense_reward: R3HFDenseReward = self.reward_funcs[self._dense_index]
            self.dense_reward.bind(self.processing_class)
            self._rewards_per_func: torch.Tensor | None = None
            self.last_dense: dict[str, Any] = {}

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):  # type: ignore[no-untyped-def]
            self._prompts, self._completion_ids_list = prompts, completion_ids_list
            self._rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            return self._rewards_per_func

        def _generate_and_score_completions(self, inputs):  # type: ignore[no-untyped-def]
            output = super()._generate_and_score_completions(inputs)
            output["advantages"] = self._dense_advantages(output["completion_ids"].size(1))
            return output

        def _dense_advantages(self, width: int) -> torch.Tensor:
            return dense_advantages(self, width)

    return R3HFDenseGRPOTrainer


def dense_advantages(trainer: Any, width: int) -> Any:
    """(B, width) advantages of this process's completions; groups may span processes, so totals are gathered."""
    accelerator, mode = trainer.accelerator, "train" if trainer.model.training else "eval"
    local = len(trainer._completion_ids_list)
    local_slice = slice(accelerator.process_index * local, (accelerator.process_index + 1) * local)
    projected = trainer.dense_reward.take_rows(trainer._completion_ids_list)
    weights = trainer.reward_weights.to(trainer._rewards_per_func.device)
    others = trainer._rewards_per_func[local_slice] * weights.unsqueeze(0)
    others[:, trainer._dense_index] = 0.0
    rows = dense_rows(projected, float(weights[trainer._dense_index]), others.nansum(dim=1).tolist())
    returns = returns_to_go(rows, width).to(accelerator.device)
    all_totals = accelerator.gather(returns[:, 0].contiguous())
    generations = trainer.num_generations if mode == "train" else trainer.num_generations_eval
    advantages = group_advantages(
        returns, [len(r) for r in rows], all_totals, local_slice, generations, trainer.scale_rewards
    )
    metrics = trainer._metrics[mode]
    metrics["r3hf/dense_return_mean"].append(all_totals.mean().item())
    metrics["r3hf/first_token_advantage_abs_mean"].append(advantages[:, 0].abs().mean().item())
    # What the last batch got, for logging and tests: rows sum to w * (score - prompt_score) + others.
    trainer.last_dense = {
        "prompts": list(trainer._prompts), "completion_ids": [list(ids) for ids in trainer._completion_ids_list],
        "rows": rows, "scores": [p.score for p in projected], "prompt_scores": [p.prompt_score for p in projected],
        "aligned": [p.aligned for p in projected], "advantages": advantages.detach().cpu(),
    }
    return advantages
