"""UTF-8 byte spans of a policy's sampled tokens, computed from the ids themselves — never by re-encoding the text.

A sampled sequence is often not the canonical tokenization of its text, so re-encoding would give other tokens.
Each id is turned into the bytes it emits, and the pieces are laid end to end over the response's bytes:

- byte-level BPE (GPT-2, Llama 3, Qwen): token strings spell bytes in the byte-level alphabet;
- SentencePiece / Metaspace (Llama 2, Mistral, Gemma): ``▁`` is a space, ``<0xNN>`` pieces are raw bytes (byte
  fallback), and decoding drops the first token's leading space;
- anything else: incremental decoding, holding a token's bytes back until the character they start is complete.

Special tokens (EOS, end of turn) may or may not appear in the response text: where their text is absent they
take zero bytes. If the pieces do not spell the response exactly, there is no alignment (``None``), never a guess.
Works with a Hugging Face fast tokenizer (``transformers``) or a bare ``tokenizers.Tokenizer``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

ByteSpan = tuple[int, int]
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_METASPACE = "\u2581"


@lru_cache(maxsize=1)
def byte_level_alphabet() -> dict[str, int]:
    """The byte-level BPE alphabet: printable Latin-1 bytes stand for themselves, the other bytes for 256 + n."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {chr(b): b for b in printable}
    others = [b for b in range(256) if b not in table.values()]
    table.update({chr(256 + n): b for n, b in enumerate(others)})
    return table


def decoder_kind(tokenizer: Any) -> str:
    """``"byte_level"``, ``"metaspace"`` or ``"generic"``, read from the tokenizer's decoder."""
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    decoder = getattr(backend, "decoder", None)
    if decoder is None:
        return "generic"
    spec = json.loads(decoder.__getstate__())
    kinds = {part.get("type") for part in spec.get("decoders", [spec])}
    if "ByteLevel" in kinds:
        return "byte_level"
    if kinds & {"Metaspace", "ByteFallback"} or any(
        part.get("type") == "Replace" and _METASPACE in json.dumps(part.get("pattern"), ensure_ascii=False)
        for part in spec.get("decoders", [spec])
    ):
        return "metaspace"
    return "generic"


def token_pieces(token_ids: Sequence[int], tokenizer: Any) -> tuple[list[bytes], list[bool]]:
    """The bytes each id emits, and whether it is a special token (allowed to emit nothing)."""
    ids = [int(i) for i in token_ids]
    special = _special_ids(tokenizer)
    optional = [i in special for i in ids]
    kind = decoder_kind(tokenizer)
    if kind == "generic":
        return _incremental_pieces(ids, tokenizer), optional
    added = _added_token_contents(tokenizer)
    strings = _token_strings(ids, tokenizer)
    to_bytes = _byte_level_bytes if kind == "byte_level" else _metaspace_bytes
    pieces = [
        added[i].encode() if i in added and not _BYTE_FALLBACK.fullmatch(s) else to_bytes(s)
        for i, s in zip(ids, strings)
    ]
    return pieces, optional


def align_pieces(response: bytes, pieces: Sequence[bytes], optional: Sequence[bool]) -> list[ByteSpan] | None:
    """Lay the pieces end to end over ``response``; ``None`` unless they spell it exactly.

    Decoding may drop the first token's leading space (SentencePiece's dummy prefix), so that reading is tried too.
    """
    spans = _lay_end_to_end(response, pieces, optional)
    first = next((i for i, piece in enumerate(pieces) if piece), None)
    if spans is None and first is not None and pieces[first][:1] == b" ":
        stripped = [*pieces[:first], pieces[first][1:], *pieces[first + 1 :]]
        spans = _lay_end_to_end(response, stripped, optional)
    return spans


def _lay_end_to_end(response: bytes, pieces: Sequence[bytes], optional: Sequence[bool]) -> list[ByteSpan] | None:
    cursor, spans = 0, []
    for piece, may_vanish in zip(pieces, optional):
        if response.startswith(piece, cursor):
            spans.append((cursor, cursor + len(piece)))
            cursor += len(piece)
        elif may_vanish:  # a special token whose text is not in the response
            spans.append((cursor, cursor))
        else:
            return None
    return spans if cursor == len(response) else None


def policy_byte_spans(response: str, token_ids: Sequence[int], tokenizer: Any) -> list[ByteSpan] | None:
    """``[start, end)`` UTF-8 byte spans of the sampled ``token_ids`` in ``response``, or None if they disagree."""
    pieces, optional = token_pieces(token_ids, tokenizer)
    return align_pieces(response.encode("utf-8"), pieces, optional)


def _byte_level_bytes(token: str) -> bytes:
    alphabet = byte_level_alphabet()
    if all(char in alphabet for char in token):
        return bytes(alphabet[char] for char in token)
    return token.encode()


def _metaspace_bytes(token: str) -> bytes:
    fallback = _BYTE_FALLBACK.fullmatch(token)
    if fallback:
        return bytes([int(fallback.group(1), 16)])
    return token.replace(_METASPACE, " ").encode()


def _incremental_pieces(ids: list[int], tokenizer: Any) -> list[bytes]:
    pieces, emitted = [], b""
    for count in range(1, len(ids) + 1):
        text = _decode(tokenizer, ids[:count])
        if text.endswith("\ufffd") and count < len(ids):
            pieces.append(b"")  # an incomplete character: its bytes go to the token that completes it
            continue
        raw = text.encode()
        if not raw.startswith(emitted):
            pieces.append(b"\xff")  # decoding rewrote earlier text: no byte ever matches 0xff in UTF-8
            continue
        pieces.append(raw[len(emitted) :])
        emitted = raw
    return pieces


def _decode(tokenizer: Any, ids: list[int]) -> str:
    try:
        return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    except TypeError:  # a bare tokenizers.Tokenizer
        return tokenizer.decode(ids, skip_special_tokens=False)


def _token_strings(ids: list[int], tokenizer: Any) -> list[str]:
    if hasattr(tokenizer, "convert_ids_to_tokens"):
        return list(tokenizer.convert_ids_to_tokens(ids))
    return [tokenizer.id_to_token(i) or "" for i in ids]


def _special_ids(tokenizer: Any) -> set[int]:
    if hasattr(tokenizer, "all_special_ids"):
        return set(tokenizer.all_special_ids)
    return {i for i, token in tokenizer.get_added_tokens_decoder().items() if token.special}


def _added_token_contents(tokenizer: Any) -> dict[int, str]:
    """Added tokens are stored as their text, not in the byte-level/metaspace spelling."""
    decoder = getattr(tokenizer, "added_tokens_decoder", None)
    if decoder is None and hasattr(tokenizer, "get_added_tokens_decoder"):
        decoder = tokenizer.get_added_tokens_decoder()
    return {int(i): token.content for i, token in (decoder or {}).items()}
