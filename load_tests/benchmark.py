"""Throughput benchmark: the in-process ceiling and our HTTP server under trainer-shaped load, in ONE run.

    .venv/bin/python load_tests/benchmark.py                      # CPU shape (~20M params), fp32 and bf16
    .venv/bin/python load_tests/benchmark.py --size ci            # seconds-long smoke run (the test suite runs it)
    .venv/bin/python load_tests/benchmark.py --shape gpu --dtypes bfloat16   # TinyLlama-1.1B shape on a GPU

Prints a table and writes JSON (--json). Every ratio compares numbers measured in this run on this machine.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_http import median, run_load, served, single_item_bodies  # noqa: E402
from bench_peer import get_reward_bodies, openrlhf_served, peer_available, text_queries  # noqa: E402
from bench_workload import SHAPES, build_model, forward_flops, grpo_groups, rlhf_samples  # noqa: E402

from r3hf_server.runner.forward import padded_forward  # noqa: E402
from r3hf_server.runner.hf import build_hf_runner  # noqa: E402
from r3hf_server.settings import ModelLoadSettings  # noqa: E402

SIZES = {  # samples, single-request batch, GRPO (groups, G, prompt, response)
    "ci": dict(samples=12, batch=16, grpo=(2, 4, 64, 16), prompt_range=(16, 64), response_median=24, cap=64),
    "full": dict(samples=128, batch=256, grpo=(4, 8, 512, 128), prompt_range=(64, 512), response_median=200,
                 cap=1024),
}


def matmul_peak(dtype: torch.dtype, n: int = 1024, repeats: int = 10) -> float:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def ceiling(runner, sequences: list[list[int]], max_batch_tokens: int) -> dict:
    """Tokens/s of the bare forward: (a) length-sorted padded batches at the token budget, (b) one at a time."""
    total = sum(len(s) for s in sequences)
    ordered = sorted(sequences, key=len)
    batches, current = [], []
    for seq in ordered:
        if current and len(seq) * (len(current) + 1) > max_batch_tokens:
            batches.append(current)
            current = []
        current.append(seq)
    batches.append(current)
    padded_forward(runner.model, [ordered[0]])  # warm-up
    started = time.perf_counter()
    for batch in batches:
        padded_forward(runner.model, batch)
    sorted_s = time.perf_counter() - started
    started = time.perf_counter()
    for seq in sequences:
        padded_forward(runner.model, [seq])
    single_s = time.perf_counter() - started
    return {"sorted_batches_tok_s": total / sorted_s, "one_at_a_time_tok_s": total / single_s,
            "tok_s": total / min(sorted_s, single_s)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def row(name: str, result, ceiling_tok_s: float) -> dict:
    return {"scenario": name, "tok_s": result.tokens_per_s, "items_s": result.items_per_s,
            "p50_ms": result.latency_ms(0.5), "p95_ms": result.latency_ms(0.95), "p99_ms": result.latency_ms(0.99),
            "vs_ceiling": result.tokens_per_s / ceiling_tok_s,
            "server_inference_p50_ms": median(result.server_inference_ms),
            "overhead_p50_ms": result.overhead_p50_ms()}


def http_scenarios(model_dir: str, dtype: str, size: dict, samples, ceiling_tok_s: float, vocab: int) -> list[dict]:
    items = [s.as_item() for s in samples]
    rows = []
    with served(model_dir, free_port(), "--dtype", dtype) as base:
        run_load(base, "/token_rewards", single_item_bodies(items[:4]), 4)  # warm-up
        for concurrency in (1, 16, 64):
            subset = items[: max(8, len(items) // 4)] if concurrency == 1 else items
            result = run_load(base, "/token_rewards", single_item_bodies(subset), concurrency)
            rows.append(row(f"token_rewards c={concurrency} single-item", result, ceiling_tok_s))
        score = run_load(base, "/score", single_item_bodies(items), 64)
        rows.append(row("score c=64 single-item", score, ceiling_tok_s))
        batch = [items[i % len(items)] for i in range(size["batch"])]
        rows.append(row(f"token_rewards one request of {len(batch)}",
                        run_load(base, "/token_rewards", [{"items": batch}], 1), ceiling_tok_s))
        groups, g, prompt, response = size["grpo"]
        grpo = [s.as_item() for s in grpo_groups(groups, g, 7, vocab, prompt, response)]
        rows.append(row(f"GRPO G={g} p={prompt} r={response} c=64, prompt reuse",
                        run_load(base, "/token_rewards", single_item_bodies(grpo), 64), ceiling_tok_s))
    with served(model_dir, free_port(), "--dtype", dtype, "--no-prompt-reuse") as base:
        run_load(base, "/token_rewards", single_item_bodies(grpo[:4]), 4)
        rows.append(row(f"GRPO G={g} p={prompt} r={response} c=64, no reuse",
                        run_load(base, "/token_rewards", single_item_bodies(grpo), 64), ceiling_tok_s))
    return rows


def peer_scenarios(model_dir: str, samples, size: dict, ceiling_tok_s: float, peer_batch_size: int) -> list[dict]:
    """Ours (bf16) and OpenRLHF's serve_rm (bf16) on the same /get_reward text load, distinct prompts."""
    from transformers import AutoTokenizer

    queries = text_queries(AutoTokenizer.from_pretrained(model_dir), samples)
    singles, single_tokens = get_reward_bodies(queries, 1)
    batch = [queries[i % len(queries)] for i in range(size["batch"])]
    big, big_tokens = get_reward_bodies(batch, len(batch))
    rows = []
    servers = (("ours", lambda: served(model_dir, free_port(), "--dtype", "bfloat16")),
               ("openrlhf", lambda: openrlhf_served(model_dir, free_port(), peer_batch_size)))
    for name, start in servers:
        with start() as base:
            run_load(base, "/get_reward", singles[:4], 4, body_tokens=single_tokens[:4])  # warm-up
            single = run_load(base, "/get_reward", singles, 64, body_tokens=single_tokens)
            rows.append(row(f"{name} /get_reward c=64 single-item", single, ceiling_tok_s))
            one = run_load(base, "/get_reward", big, 1, body_tokens=big_tokens)
            rows.append(row(f"{name} /get_reward one request of {len(batch)}", one, ceiling_tok_s))
    return rows


def measure(model_dir: str, shape: str, dtype: str, size: dict, budget: int, peer_batch_size: int = 0) -> dict:
    vocab = SHAPES[shape][4]
    samples = rlhf_samples(size["samples"], seed=1, vocab=vocab, prompt_range=size["prompt_range"],
                           response_median=size["response_median"], cap=size["cap"])
    sequences = [s.prompt_ids + s.response_ids for s in samples]
    runner = build_hf_runner(ModelLoadSettings(model=model_dir, dtype=dtype))
    peak = matmul_peak(getattr(torch, dtype))
    ceil = ceiling(runner, sequences, budget)
    del runner
    flops_per_token = forward_flops(shape, [len(s) for s in sequences]) / sum(len(s) for s in sequences)
    rows = http_scenarios(model_dir, dtype, size, samples, ceil["tok_s"], vocab)
    if peer_batch_size and dtype == "bfloat16":
        rows += peer_scenarios(model_dir, samples, size, ceil["tok_s"], peer_batch_size)
    for r in rows:
        r["mfu"] = r["tok_s"] * flops_per_token / peak
    return {"dtype": dtype, "matmul_peak_flop_s": peak, "flops_per_token": flops_per_token,
            "ceiling": {**ceil, "mfu": ceil["tok_s"] * flops_per_token / peak}, "http": rows}


def print_table(report: dict) -> None:
    print(f"\nmodel shape {report['shape']}, {report['samples']} samples, device {report['device']}")
    for run in report["runs"]:
        c = run["ceiling"]
        print(f"\n[{run['dtype']}] matmul peak {run['matmul_peak_flop_s'] / 1e9:.0f} GFLOP/s; ceiling "
              f"{c['tok_s']:.0f} tok/s (sorted batches {c['sorted_batches_tok_s']:.0f}, one at a time "
              f"{c['one_at_a_time_tok_s']:.0f}), MFU {c['mfu']:.1%}")
        print(f"{'scenario':<46}{'tok/s':>9}{'items/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'x ceil':>8}"
              f"{'MFU':>7}")
        for r in run["http"]:
            print(f"{r['scenario']:<46}{r['tok_s']:>9.0f}{r['items_s']:>9.1f}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}"
                  f"{r['p99_ms']:>9.1f}{r['vs_ceiling']:>8.2f}{r['mfu']:>7.1%}")
    print("\nMFU counts the FLOPs of a plain pass; rows with prompt reuse skip some of them, so they can exceed 100%.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default=None, help="model shape (default: cpu; tiny for ci)")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--max-batch-tokens", type=int, default=16384)
    parser.add_argument("--model-dir", help="reuse a benchmark model built earlier")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--peer-batch-size", type=int, default=16,
                        help="OpenRLHF serve_rm --batch_size for the peer comparison (bf16 run only; 0 = skip). "
                        "Needs load_tests/peer/setup_openrlhf.sh run once.")
    args = parser.parse_args()
    shape = args.shape or ("tiny" if args.size == "ci" else "cpu")
    size = SIZES[args.size]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir or str(build_model(Path(tmp) / f"bench-{shape}", shape))
        peer = args.peer_batch_size if peer_available() else 0
        if args.peer_batch_size and not peer:
            print("OpenRLHF peer skipped: run load_tests/peer/setup_openrlhf.sh first", file=sys.stderr)
        runs = [measure(model_dir, shape, dtype, size, args.max_batch_tokens, peer) for dtype in args.dtypes.split(",")]
    report = {"shape": shape, "samples": size["samples"], "device": "cuda" if torch.cuda.is_available() else "cpu",
              "torch_threads": torch.get_num_threads(), "runs": runs}
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
