"""Tiny reward models of several architectures, built offline: random weights, a BPE tokenizer trained here."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, processors, trainers
from transformers import (
    AutoModelForSequenceClassification, BertConfig, BloomConfig, DebertaV2Config, Gemma2Config, GPT2Config,
    GPTNeoXConfig, LlamaConfig, MistralConfig, ModernBertConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen3Config,
    GemmaConfig, Phi3Config, RobertaConfig,
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


def build_encoder_tokenizer(out: Path, vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """The same BPE with an encoder's framing: ``<s> text </s>`` (RoBERTa style), so a suffix follows every sequence."""
    tok = Tokenizer.from_str(build_tokenizer(out, vocab_size).backend_tokenizer.to_str())
    cls, sep = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B </s>", special_tokens=[("<s>", cls), ("</s>", sep)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
        pad_token="<pad>", model_max_length=256,
    )
    fast.save_pretrained(out)
    return fast


def _encoder_ids(tokenizer: PreTrainedTokenizerFast) -> dict:
    return dict(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )


# Encoder reward models, served by prefix expansion (every prefix its own pass through the model's own pooling).
ENCODERS = {
    "bert": lambda t: BertConfig(max_position_embeddings=256, **_encoder_ids(t), **COMMON),
    "roberta": lambda t: RobertaConfig(max_position_embeddings=260, **_encoder_ids(t), **COMMON),
    "deberta_v2": lambda t: DebertaV2Config(
        max_position_embeddings=256, relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=32,
        **_encoder_ids(t), **COMMON),
    "modernbert": lambda t: ModernBertConfig(
        max_position_embeddings=256, local_attention=16, global_attn_every_n_layers=2,
        cls_token_id=t.cls_token_id, sep_token_id=t.sep_token_id, **_encoder_ids(t), **COMMON),
}


def build_encoder(arch: str, out: Path, tokenizer_dir: Path, factories: dict | None = None) -> Path:
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    config = (factories or ENCODERS)[arch](tokenizer)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config)
    with torch.no_grad():  # a visible head and pooler, as for the decoders: random init gives near-constant scores
        for name, module in model.named_modules():
            pooling = any(part in name for part in ("pooler", "classifier", "head"))
            if isinstance(module, torch.nn.Linear) and (module.out_features == 1 or pooling):
                module.weight.normal_(0, 1.0)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


CUSTOM_RM_CODE = '''"""A custom-code reward model: an MLP value head (v_head) on a Llama backbone."""
import torch
from transformers import LlamaModel, LlamaPreTrainedModel


class TinyLlamaRewardModel(LlamaPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        size = config.hidden_size
        self.v_head = torch.nn.Sequential(torch.nn.Linear(size, size), torch.nn.Tanh(), torch.nn.Linear(size, 1))
        self.post_init()

    def forward(self, input_ids, attention_mask=None, **kwargs):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        values = self.v_head(hidden).squeeze(-1)
        if attention_mask is None:
            last = torch.full((input_ids.shape[0],), input_ids.shape[1] - 1, device=input_ids.device)
        else:
            last = attention_mask.sum(-1) - 1
        if getattr(self.config, "pool_first_token", False):
            last = torch.zeros_like(last)
        return values[torch.arange(values.shape[0], device=values.device), last]
'''


def build_custom_code_rm(out: Path, tokenizer_dir: Path, pool_first_token: bool = False) -> Path:
    """modeling_tinyrm.py + an auto_map in config.json: loadable only with trust_remote_code."""
    import importlib.util
    import json

    out.mkdir(parents=True, exist_ok=True)
    (out / "modeling_tinyrm.py").write_text(CUSTOM_RM_CODE)
    spec = importlib.util.spec_from_file_location(f"modeling_tinyrm_{abs(hash(str(out)))}", out / "modeling_tinyrm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    config = ARCHITECTURES["llama"](len(tokenizer))
    config.pad_token_id = tokenizer.pad_token_id
    config.pool_first_token = pool_first_token
    torch.manual_seed(0)
    model = module.TinyLlamaRewardModel(config)
    with torch.no_grad():
        model.v_head[2].weight.normal_(0, 1.0)
    model.save_pretrained(out)
    saved = json.loads((out / "config.json").read_text())
    saved["auto_map"] = {"AutoModel": "modeling_tinyrm.TinyLlamaRewardModel"}
    saved["architectures"] = ["TinyLlamaRewardModel"]
    (out / "config.json").write_text(json.dumps(saved, indent=2))
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
