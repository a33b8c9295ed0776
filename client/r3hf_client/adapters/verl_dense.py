"""A verl reward manager that fills every response token with its R3HF reward (the dense path).

Register it with verl's legacy reward-manager path (``reward_model.reward_manager`` pointing to this module and
``R3HFRewardManager``; verl ≤ 0.7 with the reward loop off). verl constructs it as
``R3HFRewardManager(tokenizer, num_examine, compute_score, reward_fn_key)`` and calls ``manager(data,
return_dict)``; it returns ``reward_tensor`` (float32, batch × response_length) with ``reward_tensor[i, k]`` = the
reward of response token k, for ``k < valid_length`` (EOS included), 0 beyond.

When the policy and the RM share a tokenizer (``R3HF_RM_SHARES_TOKENIZER=1``) the ids are sent as they are and each
policy token gets its own reward. Otherwise the text is sent and the rewards are projected onto the policy's
sampled tokens (``r3hf_client.projection``); samples whose alignment is unavailable get their whole reward on the
last token, and ``reward_extra_info["r3hf_aligned"]`` says which.
"""

from __future__ import annotations

import os
from typing import Any

from .settings import ClientSettings, shared_client


class R3HFRewardManager:
    def __init__(
        self, tokenizer: Any, num_examine: int = 0, compute_score: Any = None, reward_fn_key: str = "data_source",
        *, client: Any = None, rm_shares_tokenizer: bool | None = None, **kwargs: Any,
    ) -> None:
        # compute_score and reward_fn_key are verl's constructor arguments; the server is the scorer here.
        self.tokenizer = tokenizer
        self.num_examine = num_examine
        self.client = client or shared_client(ClientSettings.from_env())
        if rm_shares_tokenizer is None:
            rm_shares_tokenizer = os.environ.get("R3HF_RM_SHARES_TOKENIZER", "0") == "1"
        self.rm_shares_tokenizer = rm_shares_tokenizer

    def __call__(self, data: Any, return_dict: bool = False) -> Any:
        import torch

        prompt_ids, response_ids = self._valid_ids(data.batch)
        rows, extra = (self._same_vocab if self.rm_shares_tokenizer else self._projected)(prompt_ids, response_ids)
        reward_tensor = torch.zeros(data.batch["responses"].shape, dtype=torch.float32)
        for i, row in enumerate(rows):
            reward_tensor[i, : len(row)] = torch.tensor(row, dtype=torch.float32)
        self._examine(response_ids, extra["r3hf_score"])
        if return_dict:
            return {"reward_tensor": reward_tensor, "reward_extra_info": extra}
        return reward_tensor

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
            "r3hf_aligned": [True] * len(results),
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
