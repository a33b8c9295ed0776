"""A verl reward manager that gives every response token its R3HF reward (the dense path).

verl ≥ 0.8 (reward loop; tested with 0.9.1): ``reward.reward_manager.source=importlib``,
``reward.reward_manager.module.path`` = this file or ``pkg://r3hf_client.adapters.verl_dense``,
``reward.reward_manager.name=R3HFRewardManager``. The loop calls ``await run_single(data)`` once per sample; the
answer's ``reward_score`` is that sample's list of per-token rewards, and the classmethod ``assemble_rm_scores``
lays the lists out as ``rm_scores`` (float32, batch × response_length): entry ``[i, k]`` = the reward of response
token k for ``k < valid_length`` (EOS included), 0 beyond, so each row sums to ``score − prompt_score``.

verl ≤ 0.7 (legacy path, reward loop off): the same class is constructed as ``R3HFRewardManager(tokenizer,
num_examine, compute_score, reward_fn_key)`` and called as ``manager(data, return_dict)``, returning
``reward_tensor`` with the same layout.

When the policy and the RM share a tokenizer (``R3HF_RM_SHARES_TOKENIZER=1``) the ids are sent as they are and each
policy token gets its own reward. Otherwise the text is sent and the rewards are projected onto the policy's
sampled tokens (``r3hf_client.projection``); samples whose alignment is unavailable get their whole reward on the
last token, and ``reward_extra_info["r3hf_aligned"]`` says which.

verl loads this file standalone (``spec_from_file_location``), so it imports only absolute names.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from r3hf_client.adapters.settings import ClientSettings, shared_client

try:  # verl ≥ 0.8: subclass the reward loop's base so the loop's own set-up (event loop, class init) runs
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase as _ManagerBase
except ImportError:  # verl ≤ 0.7, or no verl at all (the legacy __call__ needs none of it)
    _ManagerBase = object


class R3HFRewardManager(_ManagerBase):  # type: ignore[misc,valid-type]
    def __init__(
        self, tokenizer: Any = None, num_examine: int = 0, compute_score: Any = None,
        reward_fn_key: str = "data_source", *, config: Any = None, client: Any = None,
        rm_shares_tokenizer: bool | None = None, **kwargs: Any,
    ) -> None:
        # compute_score, reward_fn_key and the reward loop's reward_router_address / reward_model_tokenizer are
        # verl's constructor arguments; the server is the scorer here.
        if _ManagerBase is not object:
            super().__init__(config, tokenizer, compute_score)
        self.tokenizer = tokenizer
        self.num_examine = num_examine
        self.client = client or shared_client(ClientSettings.from_env())
        if rm_shares_tokenizer is None:
            rm_shares_tokenizer = os.environ.get("R3HF_RM_SHARES_TOKENIZER", "0") == "1"
        self.rm_shares_tokenizer = rm_shares_tokenizer

    async def run_single(self, data: Any) -> dict:
        """verl ≥ 0.8: one sample's per-token rewards (a list; ``assemble_rm_scores`` makes the tensor)."""
        # The client is synchronous and thread-safe: running it off the loop lets the loop's other samples
        # reach the server together, where they are batched.
        rows, extra = await asyncio.get_running_loop().run_in_executor(None, self._rewards, data[-1:])
        return {"reward_score": rows[0], "reward_extra_info": {key: values[0] for key, values in extra.items()}}

    @classmethod
    def assemble_rm_scores(cls, data: Any, scores: list) -> Any:
        """``rm_scores`` (float32, batch × response_length) from each sample's per-token list."""
        import torch

        rm_scores = torch.zeros(data.batch["responses"].shape, dtype=torch.float32)
        prompt_width = data.batch["prompts"].shape[-1]
        valid = data.batch["attention_mask"][:, prompt_width:].sum(-1).tolist()
        for i, row in enumerate(scores):
            if len(row) != valid[i]:
                raise ValueError(f"sample {i}: {len(row)} token rewards for {valid[i]} response tokens")
            rm_scores[i, : len(row)] = torch.tensor(row, dtype=torch.float32)
        return rm_scores.to(data.batch["responses"].device)

    def __call__(self, data: Any, return_dict: bool = False) -> Any:
        """verl ≤ 0.7: the whole batch at once."""
        rows, extra = self._rewards(data)
        reward_tensor = self.assemble_rm_scores(data, rows)
        if return_dict:
            return {"reward_tensor": reward_tensor, "reward_extra_info": extra}
        return reward_tensor

    def _rewards(self, data: Any) -> tuple[list[list[float]], dict[str, list]]:
        prompt_ids, response_ids = self._valid_ids(data.batch)
        rows, extra = (self._same_vocab if self.rm_shares_tokenizer else self._projected)(prompt_ids, response_ids)
        self._examine(response_ids, extra["r3hf_score"])
        return rows, extra

    @staticmethod
    def _valid_ids(batch: Any) -> tuple[list[list[int]], list[list[int]]]:
        """Prompts are left-padded, responses right-padded; the attention mask marks the real tokens of both."""
        prompts, responses, mask = batch["prompts"], batch["responses"], batch["attention_mask"]
        width = prompts.shape[-1]
        prompt_lengths = mask[:, :width].sum(-1).tolist()
        response_lengths = mask[:, width:].sum(-1).tolist()
        prompt_ids = [prompts[i, width - n :].tolist() for i, n in enumerate(prompt_lengths)]
        response_ids = [responses[i, :n].tolist() for i, n in enumerate(response_lengths)]
        return prompt_ids, response_ids

    def _same_vocab(self, prompt_ids: list, response_ids: list) -> tuple[list[list[float]], dict]:
        items = [{"prompt_ids": p, "response_ids": r} for p, r in zip(prompt_ids, response_ids)]
        results = self.client.token_rewards(items, truncation="left").results
        extra = {
            "r3hf_score": [r.score for r in results], "r3hf_prompt_score": [r.prompt_score for r in results],
            "r3hf_aligned": [True] * len(results), "r3hf_mapped_fraction": [1.0] * len(results),
        }
        return [list(r.token_rewards) for r in results], extra

    def _projected(self, prompt_ids: list, response_ids: list) -> tuple[list[list[float]], dict]:
        decode = self.tokenizer.decode
        # Chat markup in the prompt is kept as text; the response's EOS is not text, it takes zero bytes.
        prompts = [decode(ids, skip_special_tokens=False) for ids in prompt_ids]
        responses = [decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False) for ids in response_ids]
        projected = self.client.token_rewards_for_policy(
            prompts, responses, policy_ids=response_ids, policy_tokenizer=self.tokenizer, truncation="left"
        )
        extra = {
            "r3hf_score": [p.score for p in projected],
            "r3hf_prompt_score": [p.prompt_score for p in projected],
            "r3hf_aligned": [p.aligned for p in projected],
            "r3hf_mapped_fraction": [p.mapped_fraction for p in projected],
        }
        return [p.token_rewards for p in projected], extra

    def _examine(self, response_ids: list, scores: list[float]) -> None:
        for ids, score in list(zip(response_ids, scores))[: self.num_examine]:
            print("[r3hf response]", self.tokenizer.decode(ids, skip_special_tokens=True))
            print("[r3hf score]", score)
