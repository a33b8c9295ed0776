"""The demo model's byte-level BPE tokenizer, trained on the same text as the model."""

from __future__ import annotations

import random

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from .material import (
    BOS,
    CHAT_SUFFIX,
    CHAT_TEMPLATE,
    CLOSERS,
    EOS,
    FORMATS,
    MODEL_MAX_LENGTH,
    OPENERS,
    PAD,
    SPECIAL_TOKENS,
    TRAIN_CORES,
    TRAIN_PROMPTS,
    UNK,
    format_prompt,
    render,
)

def tokenizer_corpus(train_words: list[str], seed: int, repeats: int = 3) -> list[str]:
    """Prompt + response text as in training (all formats); every training word
    appears `repeats` times. Held-out words never appear, so at evaluation
    they are split into sub-words the model has seen."""
    rng = random.Random(seed)
    words = [w for _ in range(repeats) for w in train_words]
    rng.shuffle(words)
    texts = []
    while words:
        core = rng.choice(TRAIN_CORES)
        k = core.count("{}")
        slot_words, words = words[:k], words[k:]
        if len(slot_words) < k:
            break
        resp = render(core, slot_words, rng.choice(OPENERS), rng.choice(CLOSERS))
        # all input formats, so e.g. a response word right after "\n" gets merges too
        texts.append(format_prompt(rng.choice(TRAIN_PROMPTS), rng.choice(FORMATS))[0] + resp.text)
    return texts


def build_tokenizer(train_words: list[str], vocab_size: int, seed: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(train_words, seed), trainer=trainer)
    # `tokenizer("text")` -> <s> + tokens; no EOS (scores are read at the last real token).
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A {BOS}:1 $B:1",
        special_tokens=[(BOS, tok.token_to_id(BOS))],
    )
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=MODEL_MAX_LENGTH,
        padding_side="right",
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    rendered = hf_tok.apply_chat_template(
        [{"role": "user", "content": "Hi?"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == format_prompt("Hi?", "chat")[0], repr(rendered)
    rendered = hf_tok.apply_chat_template(
        [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Yo."}], tokenize=False
    )
    assert rendered == format_prompt("Hi?", "chat")[0] + "Yo." + CHAT_SUFFIX, repr(rendered)
    return hf_tok
