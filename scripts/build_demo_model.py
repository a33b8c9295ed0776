"""Build the tiny demo reward model shipped with the R3HF token-reward service.

What it builds
--------------
``service/r3hf_server/demo_model/`` containing

* a byte-level BPE tokenizer (``tokenizers`` library, saved as a transformers
  fast tokenizer with ``model_max_length`` and a chat template),
* a small ``LlamaForSequenceClassification`` reward model (``num_labels=1``,
  safetensors),
* ``heldout_words.json``: the lexicon words that were kept out of tokenizer
  and reward-model training (used by the acceptance checks),
* ``build_info.json``: the settings used and the acceptance-check numbers.

How the model is trained
------------------------
Preference data comes from the human word-valence ratings of the VADER
lexicon (``vader_lexicon.txt`` inside the PyPI package ``vaderSentiment``:
word, mean rating, std, the 10 individual ratings). Templated English
responses to neutral prompts embed lexicon words among neutral filler words.
A simulated annotator compares two responses by drawing one of the 10 human
ratings for every lexicon word that differs between them and prefers the
response with the larger total (ties: coin flip). The model is trained with
the Bradley-Terry loss ``-logsigmoid(r_chosen - r_rejected)`` on those pairs
only; there is no regression on valence values.

Truncated responses (cut after any word, including the empty response) are
valid responses too, so most pairs compare a response with its own prefixes
or with a twin response that differs in one slot word. This makes the score
at every prefix behave like a running sum of the valence seen so far, which
is what the service needs: per-token reward = score(prefix up to t) -
score(prefix up to t-1), from one forward pass.

Sequence format (used in training and expected at inference):
    BOS + prompt + separator + response, NO EOS appended,
with the reward read at the last real token (right padding). Prompts appear
both as plain text (separator " ", "\\n" or "") and rendered with the chat
template (``apply_chat_template(..., add_generation_prompt=True)``; the
template already emits BOS). When the whole conversation is rendered, the
template ends the assistant turn with "</s>\\n"; training pairs a response
with and without that suffix as ties, so the suffix carries ~0 reward and
the score after it equals the score at the response's last token.

Reproduce
---------
    .venv/bin/python scripts/build_demo_model.py            # build + checks
    .venv/bin/python scripts/build_demo_model.py --check-only

Everything is seeded (``--seed``); CPU only, ``torch.set_num_threads(2)``. The pieces live in
``scripts/demo_builder/`` (material, tokenizer, pairs, training, checks); this file is the command.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from demo_builder.material import DEFAULT_OUT, REPO_ROOT, assert_neutral, load_lexicon, split_words
from demo_builder.tokenizer import build_tokenizer
from demo_builder.training import build_model, train
from demo_builder.checks import demo_examples, print_checks, run_checks


def display_path(path: Path) -> str:
    """Repo-relative when possible, so build_info.json holds no machine paths."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def save(out: Path, hf_tok, model, held_words: list[str], args) -> None:
    out.mkdir(parents=True, exist_ok=True)
    hf_tok.save_pretrained(out)
    model.save_pretrained(out)
    (out / "heldout_words.json").write_text(json.dumps({
        "description": "VADER lexicon words (plain lowercase alphabetic entries) held out from "
                       "tokenizer and reward-model training; used by the acceptance checks.",
        "seed": args.seed,
        "heldout_frac": args.heldout_frac,
        "heldout_words": held_words,
    }, indent=0))
    for f in out.iterdir():  # safetensors is written 0600; the package data must be readable
        f.chmod(0o644)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-groups", type=int, default=48, help="twin groups (2 responses each) per step")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--vocab-size", type=int, default=3000)
    p.add_argument("--heldout-frac", type=float, default=0.2)
    p.add_argument("--check-only", action="store_true", help="only run the acceptance checks on --out")
    return p.parse_args()


def main():
    args = parse_args()
    torch.set_num_threads(2)
    if args.check_only:
        results = run_checks(args.out, args.seed)
        print_checks(results)
        return
    t_start = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    lexicon = load_lexicon()
    assert_neutral(lexicon)
    train_words, held_words = split_words(lexicon, args.heldout_frac, args.seed)
    print(f"lexicon words {len(lexicon)}: train {len(train_words)}, held out {len(held_words)}")

    hf_tok = build_tokenizer(train_words, args.vocab_size, args.seed)
    print(f"tokenizer vocab {len(hf_tok)}")
    model = build_model(hf_tok, args.layers, args.hidden)
    print(f"model params {sum(p.numel() for p in model.parameters()):,}")
    train(model, hf_tok.backend_tokenizer, lexicon, train_words, args)

    save(args.out, hf_tok, model, held_words, args)

    results = run_checks(args.out, args.seed)
    build_info = {
        "script": "scripts/build_demo_model.py",
        "command": ".venv/bin/python scripts/build_demo_model.py",
        "args": {k: display_path(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "sequence_format": "BOS + prompt + separator + response, no EOS appended; reward = "
                           "score at the last real token (right padding)",
        "per_token_reward": "prefix_scores[t] - prefix_scores[t-1], "
                            "prefix_scores = model.score(model.model(ids).last_hidden_state)[..., 0]",
        "checks": results,
        "build_seconds": round(time.time() - t_start, 1),
    }
    (args.out / "build_info.json").write_text(json.dumps(build_info, indent=2))
    print_checks(results)
    print("\nexamples (plain format, per-token rewards):")
    demo_examples(args.out)
    size = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    print(f"\nsaved to {args.out} ({size / 1e6:.2f} MB) in {time.time() - t_start:.0f}s")


if __name__ == "__main__":
    main()
