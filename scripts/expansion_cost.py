"""What prefix expansion costs: tokens processed per response token, and time per item, next to one pass.

    .venv/bin/python scripts/expansion_cost.py [--json out.json] [--hidden 256 --layers 4]

Builds a BERT encoder RM and a Llama decoder RM of the same size (random weights, built here), and scores items with
a 64-token prompt and responses of 16/64/128 tokens, one item per batch and in batches of 8: the encoder by prefix
expansion at --prefix-stride 1, 4 and 16, the decoder in one pass. "tokens/response token" counts the positions fed
to the model (padding included), read from the model's own forward calls; "cost model" is what the batcher
budgets for the same batch (planning.batch_cost). Times are the median of --repeats runs on this machine's CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, BertConfig, LlamaConfig, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import tiny_models  # noqa: E402
from r3hf_server.runner.base import IdsInput  # noqa: E402
from r3hf_server.runner.hf import build_hf_runner  # noqa: E402
from r3hf_server.runner.planning import batch_cost  # noqa: E402
from r3hf_server.settings import ModelLoadSettings  # noqa: E402

PROMPT_TOKENS = 64
RESPONSE_TOKENS = (16, 64, 128)


def build(root: Path, hidden: int, layers: int) -> dict[str, Path]:
    tiny_models.build_encoder_tokenizer(root / "tokenizer")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(root / "tokenizer")
    size = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=4 * hidden,
                max_position_embeddings=512, num_labels=1, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    paths = {}
    for name, config in (("bert", BertConfig(**size)), ("llama", LlamaConfig(**size))):
        torch.manual_seed(0)
        AutoModelForSequenceClassification.from_config(config).save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        paths[name] = root / name
    return paths


def measure(runner, response_tokens: int, batch_size: int, repeats: int) -> dict:  # type: ignore[no-untyped-def]
    items = [
        runner.encode(IdsInput(tuple([1] + [40 + (7 * i + j) % 300 for i in range(PROMPT_TOKENS - 1)]),
                               tuple(50 + (11 * i + j) % 300 for i in range(response_tokens))), "error", False)
        for j in range(batch_size)
    ]
    fed: list[int] = []
    model = runner.loaded.model if runner.info.prefix_scores == "expanded" else runner.loaded.backbone
    hook = model.register_forward_pre_hook(
        lambda module, args, kwargs: fed.append(int(kwargs["input_ids"].numel())), with_kwargs=True
    )
    times = []
    try:
        for _ in range(repeats):
            fed.clear()
            started = time.perf_counter()
            runner.forward(items)
            times.append(time.perf_counter() - started)
    finally:
        hook.remove()
    scored = response_tokens * batch_size
    return {
        "tokens_per_response_token": round(sum(fed) / scored, 1),
        "cost_model_per_response_token": round(batch_cost(items, runner.batch_policy) / scored, 1),
        "forwards": len(fed),
        "ms_per_item": round(1000 * statistics.median(times) / batch_size, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = build(Path(tmp), args.hidden, args.layers)
        runners = {"llama one pass": build_hf_runner(ModelLoadSettings(model=str(paths["llama"])))}
        for stride in (1, 4, 16):
            runners[f"bert expanded K={stride}"] = build_hf_runner(
                ModelLoadSettings(model=str(paths["bert"]), prefix_stride=stride))
        for name, runner in runners.items():
            for response_tokens in RESPONSE_TOKENS:
                for batch_size in (1, 8):
                    row = {"model": name, "prompt": PROMPT_TOKENS, "response": response_tokens, "batch": batch_size}
                    rows.append({**row, **measure(runner, response_tokens, batch_size, args.repeats)})
    print(f"{'model':22} {'resp':>4} {'batch':>5} {'tokens/resp tok':>15} {'cost model':>10} {'forwards':>8} "
          f"{'ms/item':>8}")
    for r in rows:
        print(f"{r['model']:22} {r['response']:4d} {r['batch']:5d} {r['tokens_per_response_token']:15.1f} "
              f"{r['cost_model_per_response_token']:10.1f} {r['forwards']:8d} {r['ms_per_item']:8.2f}")
    result = {"hidden": args.hidden, "layers": args.layers, "threads": torch.get_num_threads(), "rows": rows}
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
