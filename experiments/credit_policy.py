"""The tiny policy the credit experiment trains: a 2-layer Llama LM on the demo RM's tokenizer, fitted by SFT.

The SFT text is generated the way the demo RM's preference data is (``scripts/demo_builder/material.py``: its prompts,
templates, openers/closers and VADER lexicon words), with slot words drawn in equal thirds from positive, neutral and negative
single-token lexicon words, so the starting policy writes short fluent sentences of mixed sentiment and its mean reward is near
the lexicon's middle: RL then has room to move it. Prompt format = the RM's plain "newline" form
(``BOS + prompt + "\\n"``, then the response, then EOS so the policy learns to stop).

Everything is seeded; the result is cached under ``experiments/_cache/`` keyed by the settings, so a second run
loads it in a second. The build needs ``vaderSentiment`` (the lexicon), which the server venv has and the trainer venv
does not, so ``ensure_policy`` runs this file in the server venv:

    .venv/bin/python experiments/credit_policy.py '{"sft_steps": 400}'
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL_DIR = REPO_ROOT / "service" / "r3hf_server" / "demo_model"
CACHE_DIR = Path(__file__).resolve().parent / "_cache"
SERVER_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
PROMPT_SEPARATOR = "\n"


def demo_data_module():
    """``scripts/demo_builder/material.py`` (the demo RM builder's prompts, sentence cores, lexicon and rendering):
    the one definition of how demo text is generated."""
    scripts_dir = str(REPO_ROOT / "scripts")
    if scripts_dir not in sys.path:
        sys.path.insert(0, scripts_dir)
    return importlib.import_module("demo_builder.material")


@dataclass(frozen=True)
class PolicySpec:
    layers: int = 2
    hidden: int = 128
    heads: int = 4
    sft_examples: int = 6000
    sft_steps: int = 400
    sft_batch: int = 64
    sft_lr: float = 3e-3
    seed: int = 0
    data_recipe: int = 3  # bump when sft_texts changes, so the cache rebuilds

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def rl_prompts(policy: Path) -> list[str]:
    """The prompts RL samples from (the demo RM's training prompts in the policy's prompt format), as saved with
    the policy, so the trainer venv does not need the lexicon package."""
    return json.loads((policy / "sft_info.json").read_text())["rl_prompts"]


def slot_vocabulary(tokenizer) -> dict[str, list[str]]:
    """Lexicon words the policy can write: RM-training words that are ONE token after a space (so the small SFT
    set teaches them as whole words), at least 4 letters, split by mean human rating."""
    demo = demo_data_module()
    lexicon = demo.load_lexicon()
    train_words, _ = demo.split_words(lexicon, 0.2, 0)  # the words the demo RM and its tokenizer were trained on
    single = [w for w in train_words if len(w) >= 4 and len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) == 1]
    return {
        "positive": [w for w in single if lexicon[w].mean >= 1.0],
        "neutral": [w for w in single if abs(lexicon[w].mean) < 1.0],
        "negative": [w for w in single if lexicon[w].mean <= -1.0],
    }


def sft_texts(tokenizer, n: int, seed: int) -> list[tuple[str, str]]:
    """(prompt, response) pairs of mixed sentiment: each slot word is positive, neutral or negative (1/3 each)."""
    demo = demo_data_module()
    vocabulary = list(slot_vocabulary(tokenizer).values())
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        core = rng.choice(demo.TRAIN_CORES)
        words = [rng.choice(rng.choice(vocabulary)) for _ in range(core.count("{}"))]
        response = demo.render(core, words, rng.choice(demo.OPENERS), rng.choice(demo.CLOSERS))
        pairs.append((rng.choice(demo.TRAIN_PROMPTS) + PROMPT_SEPARATOR, response.text))
    return pairs


def build_policy(spec: PolicySpec, tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(spec.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=spec.hidden, intermediate_size=int(spec.hidden * 8 / 3) // 8 * 8,
        num_hidden_layers=spec.layers, num_attention_heads=spec.heads, num_key_value_heads=spec.heads,
        max_position_embeddings=128, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def sft_batches(tokenizer, pairs, batch: int, rng: random.Random):
    """Endless right-padded batches; labels are -100 on the prompt and padding (the loss is on response + EOS)."""
    import torch

    encoded = []
    for prompt, response in pairs:
        prompt_ids = tokenizer(prompt)["input_ids"]  # BOS + prompt
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        encoded.append((prompt_ids + response_ids, len(prompt_ids)))
    while True:
        chunk = rng.sample(encoded, batch)
        width = max(len(ids) for ids, _ in chunk)
        input_ids = torch.full((batch, width), tokenizer.pad_token_id)
        labels = torch.full((batch, width), -100)
        attention = torch.zeros((batch, width), dtype=torch.long)
        for row, (ids, n_prompt) in enumerate(chunk):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, n_prompt: len(ids)] = torch.tensor(ids[n_prompt:])
            attention[row, : len(ids)] = 1
        yield input_ids, attention, labels


def fit_sft(model, tokenizer, spec: PolicySpec, log=print) -> float:
    import torch

    rng = random.Random(spec.seed)
    batches = sft_batches(tokenizer, sft_texts(tokenizer, spec.sft_examples, spec.seed), spec.sft_batch, rng)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.sft_lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, spec.sft_lr, total_steps=spec.sft_steps, pct_start=0.1)
    model.train()
    losses: list[float] = []
    for step in range(spec.sft_steps):
        input_ids, attention, labels = next(batches)
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0:
            log(f"  sft step {step + 1}/{spec.sft_steps}: loss {sum(losses[-100:]) / len(losses[-100:]):.3f}")
    model.eval()
    return sum(losses[-50:]) / len(losses[-50:])


def cached_policy(spec: PolicySpec = PolicySpec(), log=print) -> Path:
    """Directory of the SFT'd policy (model + the demo tokenizer), built on first use."""
    from transformers import AutoTokenizer

    out = policy_dir(spec)
    if (out / "sft_info.json").exists():
        return out
    started = time.time()
    tokenizer = AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)
    model = build_policy(spec, tokenizer)
    log(f"building the SFT policy ({sum(p.numel() for p in model.parameters()):,} parameters) into {out}")
    final_loss = fit_sft(model, tokenizer, spec, log)
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    info = {"spec": asdict(spec), "final_sft_loss": final_loss, "seconds": round(time.time() - started, 1),
            "rl_prompts": [p + PROMPT_SEPARATOR for p in demo_data_module().TRAIN_PROMPTS],
            "slot_vocabulary": slot_vocabulary(tokenizer)}
    (tmp / "sft_info.json").write_text(json.dumps(info, indent=2))
    tmp.rename(out)
    return out


def policy_dir(spec: PolicySpec) -> Path:
    return CACHE_DIR / f"policy-{spec.key()}"


def ensure_policy(spec: PolicySpec, python: Path = SERVER_PYTHON, threads: int = 1) -> Path:
    """The cached policy directory, built first (in ``python``'s venv, which has the lexicon) if missing."""
    out = policy_dir(spec)
    if not (out / "sft_info.json").exists():
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
        subprocess.run([str(python), __file__, json.dumps(asdict(spec))], check=True, env=env)
    return out


def main() -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    spec = PolicySpec(**json.loads(sys.argv[1])) if len(sys.argv) > 1 else PolicySpec()
    print(cached_policy(spec))


if __name__ == "__main__":
    main()
