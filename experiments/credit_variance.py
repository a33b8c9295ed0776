"""Why dense credit does or does not speed GRPO up: the policy-gradient estimate of each arm, measured directly.

On the SFT policy (the point every arm starts from), draws ``--batches`` independent GRPO batches (same shape as a
training step), scores each once per strategy through the served demo RM, and computes on the SAME samples the
gradient of ``Σ_i,t A_i,t log π(y_i,t | …) / tokens`` with each arm's advantages (sparse GRPO; the dense path's
return-to-go advantages for r3hf β 1 and 0.5, uniform, attention). Across batches it reports, per arm:

- ``noise``: E‖g − E g‖², the estimate's variance (trace of its covariance), unbiased over the batches;
- ``signal``: ‖E g‖² (unbiased: ‖ḡ‖² − noise / n), and ``snr`` = signal / noise per batch (a larger SNR = fewer
  steps for the same progress);
- ``cos_to_sparse``: cosine between the arm's mean gradient and sparse's. R3HF's extra term is a state-dependent
  baseline (see docs/experiments.md), so with enough batches it must point where sparse's does; uniform and
  attention re-weight tokens and need not.

    .venv-trainers/bin/python experiments/credit_variance.py --batches 24
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import r3hf_client  # noqa: F401
except ImportError:
    sys.path.insert(0, str(HERE.parent / "client"))

from credit_arms import ARMS  # noqa: E402
from credit_policy import SERVER_PYTHON, PolicySpec, ensure_policy, rl_prompts  # noqa: E402
from credit_server import served_demo_rm  # noqa: E402


def sample_batch(model, tokenizer, prompts, generations: int, max_new: int):
    """(prompt_texts, prompt_ids [B, P] left-padded, completion ids per row without padding) for one GRPO batch."""
    import torch

    texts = [p for p in prompts for _ in range(generations)]
    tokenizer.padding_side = "left"
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=max_new,
                             pad_token_id=tokenizer.pad_token_id)
    completions = []
    for row in out[:, enc["input_ids"].shape[1]:].tolist():
        ids = []
        for token in row:  # up to and including EOS, as TRL keeps it
            if token == tokenizer.pad_token_id:
                break
            ids.append(token)
            if token == tokenizer.eos_token_id:
                break
        completions.append(ids)
    return texts, enc, completions


def arm_advantages(arm, texts, completions, base_url, tokenizer, generations):
    """(B, T) advantages exactly as the arm's trainer computes them (sparse: one per completion, broadcast)."""
    import torch
    from r3hf_client.adapters.trl import R3HFDenseReward
    from r3hf_client.adapters.trl_dense import dense_rows, group_advantages, returns_to_go

    width = max(len(c) for c in completions)
    reward = R3HFDenseReward(base_url, redistribution=arm.redistribution or "sparse", beta=arm.beta)
    reward.bind(tokenizer)
    projected = reward.policy_token_rewards(texts, completions)
    rows = dense_rows(projected, 1.0, [0.0] * len(projected))
    if arm.redistribution is None:  # sparse GRPO: the score, group-normalised, on every token
        scores = torch.tensor([p.score for p in projected])
        grouped = scores.view(-1, generations)
        adv = (scores - grouped.mean(1).repeat_interleave(generations)) / (
            grouped.std(1).repeat_interleave(generations) + 1e-4)
        mask = torch.arange(width).unsqueeze(0) < torch.tensor([len(c) for c in completions]).unsqueeze(1)
        return adv.unsqueeze(1) * mask, [p.score for p in projected]
    returns = returns_to_go(rows, width)
    lengths = [len(r) for r in rows]
    return group_advantages(returns, lengths, returns[:, 0].clone(), slice(0, len(rows)), generations, "group"), \
        [p.score for p in projected]


def policy_gradient(model, enc, completions, advantages):
    """Flattened gradient of the dapo-style surrogate: Σ A_t log π(y_t) / number of completion tokens."""
    import torch

    width = advantages.shape[1]
    comp = torch.full((len(completions), width), 0, dtype=torch.long)
    mask = torch.zeros((len(completions), width))
    for i, ids in enumerate(completions):
        comp[i, : len(ids)] = torch.tensor(ids)
        mask[i, : len(ids)] = 1
    input_ids = torch.cat([enc["input_ids"], comp], 1)
    attention = torch.cat([enc["attention_mask"], mask.long()], 1)
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=input_ids, attention_mask=attention).logits[:, enc["input_ids"].shape[1] - 1: -1]
    logp = torch.log_softmax(logits.float(), -1).gather(-1, comp.unsqueeze(-1)).squeeze(-1)
    (-(advantages * logp * mask).sum() / mask.sum()).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).clone()


def measure(args) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    policy = ensure_policy(PolicySpec(), args.server_python, args.threads)
    tokenizer = AutoTokenizer.from_pretrained(policy)
    model = AutoModelForCausalLM.from_pretrained(policy)
    prompts = rl_prompts(policy)
    grads: dict[str, list] = {name: [] for name in ARMS}
    with served_demo_rm(args.server_python, args.threads) as base_url:
        for b in range(args.batches):
            chosen = [prompts[(b * args.prompts + k) % len(prompts)] for k in range(args.prompts)]
            texts, enc, completions = sample_batch(model, tokenizer, chosen, args.generations, args.max_new)
            for name, arm in ARMS.items():
                adv, _ = arm_advantages(arm, texts, completions, base_url, tokenizer, args.generations)
                grads[name].append(policy_gradient(model, enc, completions, adv))
    out = {}
    sparse_mean = torch.stack(grads["sparse"]).mean(0)
    for name, gs in grads.items():
        stack = torch.stack(gs)
        mean = stack.mean(0)
        noise = ((stack - mean) ** 2).sum(1).sum().item() / (len(gs) - 1)  # unbiased E|g - E g|^2
        signal = (mean ** 2).sum().item() - noise / len(gs)  # unbiased |E g|^2 (|mean|^2 carries noise / n)
        out[name] = {"noise": noise, "signal": signal, "snr": signal / noise,
                     "cos_to_sparse": torch.nn.functional.cosine_similarity(mean, sparse_mean, 0).item()}
    return out


def main() -> None:
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # unwind: stop the served RM
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=24)
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--generations", type=int, default=8)
    p.add_argument("--max-new", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here")
    p.add_argument("--server-python", type=Path, default=SERVER_PYTHON)
    args = p.parse_args()
    started = time.time()
    stats = measure(args)
    print(f"{'arm':<16}{'noise E|g-Eg|^2':>20}{'signal |Eg|^2':>18}{'SNR':>10}{'cos to sparse':>15}")
    for name, s in stats.items():
        print(f"{name:<16}{s['noise']:>20.4g}{s['signal']:>18.4g}{s['snr']:>10.3f}{s['cos_to_sparse']:>15.3f}")
    print(f"({args.batches} batches of {args.prompts}x{args.generations}, max {args.max_new} tokens, "
          f"{time.time() - started:.0f}s)")
    if args.out:
        args.out.write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if isinstance(v, int)},
                                        "command": " ".join([".venv-trainers/bin/python", *sys.argv]), "arms": stats},
                                       indent=1))


if __name__ == "__main__":
    main()
