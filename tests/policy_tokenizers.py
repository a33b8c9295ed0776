"""Two unlike tokenizers trained offline with `tokenizers`: byte-level BPE (GPT-2 style) and SentencePiece-style
Metaspace BPE with byte fallback (Llama-2 style), so projection tests cross two tokenizations of the same text."""

from __future__ import annotations

import json

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Reward models score responses; the policy learns from the reward.",
    "What a wonderful day! I love it. That was terrible and awful.",
    "café naïve über déjà vu, and numbers 12345 67890.",
    "def add(a, b):\n    return a + b",
]
SPECIALS = ["<unk>", "<s>", "</s>"]


def byte_level_bpe(vocab_size: int = 400) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 10, trainer)
    return tok


def _bytes_as_plain_vocab(tok: Tokenizer) -> Tokenizer:
    """The trainer registers the ``<0xNN>`` pieces as special added tokens; real SentencePiece conversions keep them
    as ordinary vocabulary entries, so demote them."""
    spec = json.loads(tok.to_str())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] in SPECIALS]
    return Tokenizer.from_str(json.dumps(spec))


def metaspace_byte_fallback_bpe(vocab_size: int = 700) -> Tokenizer:
    """Characters outside its small alphabet (CJK, emoji) fall back to ``<0xNN>`` byte pieces."""
    byte_pieces = [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS + byte_pieces, limit_alphabet=60, show_progress=False
    )
    tok.train_from_iterator(CORPUS * 10, trainer)
    return _bytes_as_plain_vocab(tok)
