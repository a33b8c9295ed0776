"""Tiny reward models of several architectures, built offline: random weights, a BPE tokenizer trained here."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, processors, trainers
from transformers import (
    AutoModelForSequenceClassification, BertConfig, BloomConfig, Gemma2Config, GPT2Config, GPTNeoXConfig, LlamaConfig,
    MistralConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen3Config, GemmaConfig, Phi3Config,
)

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Reward models score responses; the policy learns from the reward.",
    "What a wonderful, delightful day! I love it.",
    "That was a terrible, awful experience and I hate it.",
    "User: How are you?\nAssistant: I am fine, thank you.",
    "日本語のテキストも少し含めます。中文也可以。",
    "Emoji test 😀🎉👍 and accents: café, naïve, über.",
    "def add(a, b):\n    return a + b  # numbers 12345 67890",
]

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] | trim }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

COMMON = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, num_labels=1)

ARCHITECTURES = {
    "llama": lambda v: LlamaConfig(vocab_size=v, num_key_value_heads=2, max_position_embeddings=256, **COMMON),
    "qwen2": lambda v: Qwen2Config(vocab_size=v, num_key_value_heads=2, max_position_embeddings=256, **COMMON),
    "qwen3": lambda v: Qwen3Config(vocab_size=v, num_key_value_heads=2, head_dim=8, max_position_embeddings=256, **COMMON),
    "mistral": lambda v: MistralConfig(vocab_size=v, num_key_value_heads=2, max_position_embeddings=256, **COMMON),
    "gemma": lambda v: GemmaConfig(vocab_size=v, num_key_value_heads=2, head_dim=8, max_position_embeddings=256, **COMMON),
    "phi3": lambda v: Phi3Config(vocab_size=v, num_key_value_heads=2, max_position_embeddings=256, **COMMON),
    "gpt2": lambda v: GPT2Config(vocab_size=v, n_embd=32, n_layer=2, n_head=4, n_positions=256, num_labels=1),
    "gpt_neox": lambda v: GPTNeoXConfig(vocab_size=v, max_position_embeddings=256, **COMMON),
    # No SDPA in either class: they must start on their default (eager) attention.
    "gemma2": lambda v: Gemma2Config(vocab_size=v, num_key_value_heads=2, head_dim=8, max_position_embeddings=256, **COMMON),
    "bloom": lambda v: BloomConfig(vocab_size=v, hidden_size=32, n_layer=2, n_head=4, num_labels=1),
}

# ALiBi (BLOOM) reads positions from the attention mask, not position_ids, so packed sequences would see each
# other: the start-up probe keeps packing off for these.
PACKING_UNSUPPORTED = frozenset({"bloom"})


def build_tokenizer(out: Path, vocab_size: int = 400) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 20, trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", model_max_length=256
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return fast


def build_model(arch: str, out: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    config = ARCHITECTURES[arch](len(tokenizer))
    config.pad_token_id = tokenizer.pad_token_id
    config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    with torch.no_grad():  # a visible head: random init of a tiny model gives scores too close to 0
        head = model.score if hasattr(model, "score") else model.classifier
        head.weight.normal_(0, 1.0)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_bert(out: Path, tokenizer_dir: Path) -> Path:
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id, **COMMON)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_bidirectional_decoder(out: Path, tokenizer_dir: Path) -> Path:
    """A decoder that pools its last token but attends both ways (Gemma-3 text with bidirectional attention, as
    embedding models use it): its last position is not the score of a prefix, so it must be refused."""
    from transformers import Gemma3TextConfig

    tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer), num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
        use_bidirectional_attention=True, pad_token_id=tokenizer.pad_token_id, **COMMON,
    )
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_base_lm(out: Path, tokenizer_dir: Path) -> Path:
    """A base LM (no score head): serving it would mean a randomly initialised head."""
    from transformers import AutoModelForCausalLM

    tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    config = ARCHITECTURES["llama"](len(tokenizer))
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_value_head_checkpoint(out: Path, source: Path, mean: float = 0.5, std: float = 2.0) -> Path:
    """An OpenRLHF-style checkpoint: the head saved as value_head, (mean, std) in the config."""
    from safetensors.torch import load_file, save_file

    from transformers import AutoConfig

    weights = load_file(str(source / "model.safetensors"))
    weights["value_head.weight"] = weights.pop("score.weight")
    out.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = AutoConfig.from_pretrained(source)
    config.normalize_reward, config.mean, config.std = True, mean, std
    config.save_pretrained(out)
    PreTrainedTokenizerFast.from_pretrained(source).save_pretrained(out)
    return out
