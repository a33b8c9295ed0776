"""The benchmark's model and RLHF-shaped workload, built offline and seeded."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

# (hidden, layers, heads, intermediate, vocab): the CPU default is a Llama shape with ~20M non-embedding parameters;
# "gpu" is TinyLlama-1.1B's shape; "tiny" keeps the CI smoke run to seconds.
SHAPES = {
    "tiny": (64, 2, 4, 172, 2048),
    "cpu": (512, 6, 8, 1376, 8192),
    "gpu": (2048, 22, 32, 5632, 32000),
}


@dataclass(frozen=True)
class Sample:
    prompt_ids: list[int]
    response_ids: list[int]

    @property
    def tokens(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)

    def as_item(self) -> dict:
        return {"prompt_ids": self.prompt_ids, "response_ids": self.response_ids}


def build_model(out: Path, shape: str, seed: int = 0) -> Path:
    """A Llama-shape reward model with random weights and a small offline tokenizer, saved with save_pretrained."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    hidden, layers, heads, intermediate, vocab = SHAPES[shape]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(["reward model benchmark text"] * 10, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                        model_max_length=4096)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                         num_key_value_heads=heads, intermediate_size=intermediate, max_position_embeddings=4096,
                         num_labels=1, pad_token_id=0)
    torch.manual_seed(seed)
    LlamaForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def non_embedding_params(shape: str) -> int:
    hidden, layers, _, intermediate, _ = SHAPES[shape]
    return layers * (4 * hidden * hidden + 3 * hidden * intermediate) + hidden  # attention + MLP (+ score head)


def forward_flops(shape: str, lengths: list[int]) -> float:
    """Matmul FLOPs of one prefill pass per sequence: 2·P·n for the weights plus 2·layers·hidden·n² for causal
    attention (QKᵀ and AV over the lower triangle)."""
    hidden, layers, *_ = SHAPES[shape]
    params = non_embedding_params(shape)
    return float(sum(2 * params * n + 2 * layers * hidden * n * n for n in lengths))


def rlhf_samples(count: int, seed: int, vocab: int, prompt_range=(64, 512), response_median=200, cap=1024) -> list[Sample]:
    """Prompts uniform in prompt_range, responses lognormal around response_median, capped: distinct prompts."""
    rng = random.Random(seed)
    samples = []
    for _ in range(count):
        prompt = rng.randint(*prompt_range)
        response = min(cap, max(1, int(rng.lognormvariate(math.log(response_median), 0.6))))
        samples.append(Sample(_ids(rng, vocab, prompt), _ids(rng, vocab, response)))
    return samples


def grpo_groups(groups: int, size: int, seed: int, vocab: int, prompt_len: int, response_len: int) -> list[Sample]:
    """``groups`` prompts with ``size`` responses each (GRPO/RLOO), members of a group adjacent."""
    rng = random.Random(seed)
    samples = []
    for _ in range(groups):
        prompt = _ids(rng, vocab, prompt_len)
        samples.extend(Sample(prompt, _ids(rng, vocab, response_len)) for _ in range(size))
    return samples


def _ids(rng: random.Random, vocab: int, n: int) -> list[int]:
    return [rng.randrange(3, vocab) for _ in range(n)]
