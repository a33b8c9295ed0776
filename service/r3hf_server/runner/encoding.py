"""Turn the three item forms into token ids with the response located. Works with any HF fast tokenizer."""

from __future__ import annotations

import secrets
from typing import Any

from ..errors import InvalidInputError
from .base import ChatInput, EncodedItem, IdsInput, ItemInput, TextInput, TruncationMode
from .spans import fit_to_length, offsets_in_response, response_token_range

# A fresh marker per item stands in for the response while rendering the chat template, to find where the
# response lands. Random and checked against every message, so no user text can contain it (a fixed marker
# written into a user message used to be taken for the response).
_MARKER_PREFIX = "R3HFRESPONSE"


class TokenizerEncoder:
    def __init__(self, tokenizer: Any, max_length: int, vocab_size: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.vocab_size = vocab_size
        # The token a sequence opens with: BOS for decoders, CLS for encoders that have no BOS (BERT).
        self.bos_token_id = next(
            (i for i in (getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "cls_token_id", None))
             if i is not None), None,
        )

    def encode(self, item: ItemInput, truncation: TruncationMode, with_tokens: bool) -> EncodedItem:
        if isinstance(item, TextInput):
            text, start = item.prompt + item.response, len(item.prompt)
            encoded = self._encode_text(text, start, len(text), add_special_tokens=True, with_tokens=with_tokens)
        elif isinstance(item, IdsInput):
            encoded = self._encode_ids(item, with_tokens)
        elif isinstance(item, ChatInput):
            encoded = self._encode_chat(item, with_tokens)
        else:  # pragma: no cover - the api only builds the three forms
            raise TypeError(f"unknown item form {type(item).__name__}")
        return self.fit(encoded, truncation)

    def fit(self, encoded: EncodedItem, truncation: TruncationMode) -> EncodedItem:
        """``encoded`` within the length limit (or the reason it cannot be), its leading BOS/CLS kept."""
        return fit_to_length(encoded, self.max_length, truncation, keep_leading=self._leading_specials(encoded))

    def _encode_text(
        self, text: str, start: int, end: int, *, add_special_tokens: bool, with_tokens: bool, changed: bool = False
    ) -> EncodedItem:
        enc = self.tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
        if self._has_double_bos(ids, offsets):
            # The text already starts with the BOS string and the tokenizer added another: keep the text's own.
            ids, offsets = ids[1:], offsets[1:]
        p, q = response_token_range(offsets, start, end, self._count_leading_specials(ids, offsets))
        return EncodedItem(
            input_ids=tuple(ids),
            response_start=p,
            response_end=q,
            template_changed_response=changed,
            tokens=tuple(self.tokenizer.convert_ids_to_tokens(ids[p:q])) if with_tokens else None,
            offsets=offsets_in_response(offsets[p:q], start, end) if with_tokens else None,
        )

    def _has_double_bos(self, ids: list[int], offsets: list[tuple[int, int]]) -> bool:
        bos = self.bos_token_id
        return bos is not None and len(ids) >= 2 and ids[0] == ids[1] == bos and offsets[0][1] == offsets[0][0]

    def _count_leading_specials(self, ids: list[int], offsets: list[tuple[int, int]]) -> int:
        return int(bool(ids) and ids[0] == self.bos_token_id and offsets[0][0] == offsets[0][1])

    def _leading_specials(self, encoded: EncodedItem) -> int:
        ids = encoded.input_ids
        # Left truncation keeps a leading BOS: models are trained with it at position 0.
        return int(bool(ids) and encoded.response_start > 0 and ids[0] == self.bos_token_id)

    def _encode_ids(self, item: IdsInput, with_tokens: bool) -> EncodedItem:
        ids = item.prompt_ids + item.response_ids
        bad = [i for i in ids if i >= self.vocab_size]
        if bad:
            raise InvalidInputError(f"token id {bad[0]} is outside the model's vocabulary of {self.vocab_size} ids")
        p = len(item.prompt_ids)
        tokens = tuple(self.tokenizer.convert_ids_to_tokens(list(item.response_ids))) if with_tokens else None
        return EncodedItem(input_ids=ids, response_start=p, response_end=len(ids), tokens=tokens)

    def _encode_chat(self, item: ChatInput, with_tokens: bool) -> EncodedItem:
        if item.messages[-1][0] != "assistant":
            raise InvalidInputError(
                f'the last message must be the assistant\'s response being scored, not "{item.messages[-1][0]}"'
            )
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise InvalidInputError("this model's tokenizer has no chat template; send the text or ids form")
        messages = [{"role": role, "content": content} for role, content in item.messages]
        rendered = self._render(messages)
        start, end = self._locate_response(messages, rendered)
        changed = rendered[start:end] != messages[-1]["content"]
        # Chat templates write their own BOS; like apply_chat_template(tokenize=True), add no special tokens.
        return self._encode_text(
            rendered, start, end, add_special_tokens=False, with_tokens=with_tokens, changed=changed
        )

    def _render(self, messages: list[dict[str, str]]) -> str:
        try:
            return self.tokenizer.apply_chat_template(messages, tokenize=False)
        except Exception as exc:  # a template's own raise_exception() arrives here
            raise InvalidInputError(f"the chat template rejected these messages: {exc}") from exc

    def _locate_response(self, messages: list[dict[str, str]], rendered: str) -> tuple[int, int]:
        """Characters ``[start, end)`` of ``rendered`` that the response occupies: the template rendered with a
        marker in place of the response gives the text before and after it, and ``rendered`` must begin and end
        with exactly those. Only lengths are used, so the response's text appearing elsewhere cannot mislead it."""
        marker = fresh_marker(messages)
        marked = self._render(messages[:-1] + [{"role": "assistant", "content": marker}])
        at = marked.find(marker)
        head, tail = marked[:at], marked[at + len(marker) :]
        fits = marked.count(marker) == 1 and rendered.startswith(head) and rendered.endswith(tail)
        if not fits or len(rendered) < len(head) + len(tail):
            raise InvalidInputError(
                "could not locate the response in the rendered chat template (the template rewrites the assistant "
                "turn); send the text form with the prompt rendered by hand"
            )
        return len(head), len(rendered) - len(tail)


def fresh_marker(messages: list[dict[str, str]]) -> str:
    """A marker that occurs in no message (letters and digits only, so no template trims or escapes it)."""
    while True:
        marker = _MARKER_PREFIX + secrets.token_hex(8)
        if not any(marker in m["content"] for m in messages):
            return marker
