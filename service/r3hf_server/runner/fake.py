"""A deterministic runner with no model and no torch, for fast tests of everything above the runner.

Its tokenizer is character-level (plus a ``<s>`` BOS it prepends and recognises in text); its prefix score is a
running sum of a fixed pseudo-random weight per token id, so rewards are predictable: r_t = weight(id_t). Its
"attention" from the final position is ``attention_logit(id)`` normalised over the sequence, equally predictable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .base import EncodedItem, ForwardResult, ItemInput, ModelInfo, TruncationMode
from .encoding import TokenizerEncoder
from .planning import BatchPolicy

BOS, BOS_ID, EOS_ID, PAD_ID = "<s>", 1, 2, 0
_VOCAB = 4096
_SPECIAL = re.compile(re.escape(BOS))


class CharTokenizer:
    """The subset of a Hugging Face fast tokenizer's interface that the encoder uses."""

    bos_token_id = BOS_ID
    eos_token_id = EOS_ID
    pad_token_id = PAD_ID
    chat_template = "fake: <s><|role|>content\\n per message"

    def __call__(self, text: str, add_special_tokens: bool = True, return_offsets_mapping: bool = False) -> dict:
        ids, offsets = ([BOS_ID], [(0, 0)]) if add_special_tokens else ([], [])
        i = 0
        while i < len(text):
            if _SPECIAL.match(text, i):
                ids.append(BOS_ID)
                offsets.append((i, i + len(BOS)))
                i += len(BOS)
            else:
                ids.append(char_id(text[i]))
                offsets.append((i, i + 1))
                i += 1
        return {"input_ids": ids, "offset_mapping": offsets}

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [BOS if i == BOS_ID else f"<{i}>" for i in ids]

    def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool = False) -> str:
        return BOS + "".join(f"<|{m['role']}|>{m['content']}\n" for m in messages)


def char_id(char: str) -> int:
    return 3 + ord(char) % (_VOCAB - 3)


def token_weight(token_id: int) -> float:
    return ((token_id * 2654435761) % 1000) / 1000.0 - 0.5


def attention_logit(token_id: int) -> float:
    """Unnormalised attention the fake model's final position pays to a token: positive, id-dependent."""
    return 0.05 + ((token_id * 40503) % 997) / 997.0


def fake_final_attention(input_ids: Sequence[int]) -> list[float]:
    logits = [attention_logit(i) for i in input_ids]
    total = sum(logits)
    return [value / total for value in logits]


class FakeRunner:
    def __init__(self, max_length: int = 512, name: str = "fake-rm", policy: BatchPolicy = BatchPolicy()) -> None:
        self._batch_policy = policy  # how a real runner would run the batch: sets the cost the batcher cuts by
        self.encoder = TokenizerEncoder(CharTokenizer(), max_length, _VOCAB)
        self.info = ModelInfo(
            name=name, model_path="fake", fingerprint="fake0000fake0000", architecture="FakeRunner",
            dtype="float64", device="cpu", max_length=max_length, has_chat_template=True,
        )

    def encode(self, item: ItemInput, truncation: TruncationMode, with_tokens: bool) -> EncodedItem:
        return self.encoder.encode(item, truncation, with_tokens)

    @property
    def batch_policy(self) -> BatchPolicy:
        return self._batch_policy

    def forward(self, batch: Sequence[EncodedItem]) -> list[ForwardResult]:
        results = []
        for item in batch:
            total, scores = 0.0, []
            for token_id in item.input_ids:
                total += token_weight(token_id)
                scores.append(total)
            attention = fake_final_attention(item.input_ids) if item.needs_attention else None
            results.append(ForwardResult(scores, attention))
        return results
