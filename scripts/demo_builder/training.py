"""The model and its Bradley-Terry training on the preference batches."""

from __future__ import annotations

import math
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

from .material import MODEL_MAX_LENGTH, PAD
from .pairs import WordCycle, assert_prefix_consistency, make_batch

def build_model(tok: PreTrainedTokenizerFast, layers: int, hidden: int) -> LlamaForSequenceClassification:
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=int(hidden * 2.6875),  # 344 for hidden 128
        max_position_embeddings=MODEL_MAX_LENGTH,
        tie_word_embeddings=False,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    return LlamaForSequenceClassification(config)


def prefix_scores(model, input_ids: torch.Tensor) -> torch.Tensor:
    """Score of every prefix, exactly as the service computes it.

    No attention mask: with right padding and causal attention the pads
    cannot influence the real positions.
    """
    return model.score(model.model(input_ids=input_ids).last_hidden_state)[..., 0]


def train(model, tok: Tokenizer, lexicon, train_words, args) -> None:
    rng = random.Random(args.seed + 1)
    cycle = WordCycle(train_words, rng)
    assert_prefix_consistency(tok, random.Random(args.seed + 2), WordCycle(train_words, random.Random(args.seed + 3)))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, args.steps // 20)

    def lr_factor(step):  # linear warmup, cosine decay to 10%
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / max(1, args.steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    pad_id = tok.token_to_id(PAD)
    model.train()
    t0, running = time.time(), []
    for step in range(args.steps):
        batch = make_batch(tok, lexicon, cycle, rng, args.batch_groups, pad_id)
        flat = prefix_scores(model, batch.input_ids).reshape(-1)
        margin = batch.sign * (flat[batch.idx1] - flat[batch.idx2])
        loss = -F.logsigmoid(margin).mean()  # Bradley-Terry
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running.append(loss.item())
        if (step + 1) % 100 == 0 or step == 0:
            print(f"step {step + 1:5d}/{args.steps}  BT loss {np.mean(running[-100:]):.4f}  "
                  f"lr {sched.get_last_lr()[0]:.2e}  {time.time() - t0:6.1f}s", flush=True)
    model.eval()
