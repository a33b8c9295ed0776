"""Which reward-model architectures start and are exact, in each dtype: tiny random models built here, offline.

    .venv/bin/python scripts/model_coverage.py                       # every architecture, float32 and bfloat16
    .venv/bin/python scripts/model_coverage.py --dtypes float32,bfloat16,float16 --json docs/model-coverage.json
    .venv/bin/python scripts/model_coverage.py --only falcon,electra  # a few

For every architecture x dtype it builds the runner the server would (``build_hf_runner``: start-up probes
included), scores three text items in one batch, and reports the largest error of a served prefix score:
- float32: against the model's own forward run separately on every prefix (decoders: the prefix; encoders: the
  prefix plus the tokenizer's closing specials; custom code: its own forward). Exact means <= 1e-4.
- bfloat16 / float16: against the float32 served scores, with the bound 0.1 * (1 + mean|s|) of issue #10; the
  rewards' sum identity (sum = score - prompt score) is checked in float64 on every item.
"in tests" marks architectures the test suite also covers; the rest are measured only here.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import tiny_models  # noqa: E402
from r3hf_server.redistribution import RedistributionOptions, token_rewards  # noqa: E402
from r3hf_server.runner.base import TextInput  # noqa: E402
from r3hf_server.runner.custom_head import forward_score  # noqa: E402
from r3hf_server.runner.hf import build_hf_runner  # noqa: E402
from r3hf_server.settings import ModelLoadSettings  # noqa: E402

EXACT_FP32 = 1e-4
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             max_position_embeddings=256, num_labels=1)
# Decoder families beyond the test suite's (model_type -> config overrides).
EXTRA_DECODERS: dict[str, dict] = {
    "falcon": {}, "starcoder2": {"num_key_value_heads": 2}, "stablelm": {"num_key_value_heads": 4}, "olmo": {},
    "olmo2": {}, "olmo3": {}, "phi": {}, "opt": {"ffn_dim": 64, "word_embed_proj_dim": 32},
    "gptj": {"n_embd": 32, "n_layer": 2, "n_head": 4, "rotary_dim": 4}, "mixtral": {"num_key_value_heads": 2},
    "qwen2_moe": {"num_key_value_heads": 4, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 32},
    "qwen3_moe": {}, "gemma3_text": {"head_dim": 8}, "mpt": {"d_model": 32, "n_layers": 2, "n_heads": 4},
    "persimmon": {}, "exaone4": {"num_key_value_heads": 4, "head_dim": 8}, "deepseek_v3": {},
    "helium": {"num_key_value_heads": 4, "head_dim": 8}, "seed_oss": {"num_key_value_heads": 4, "head_dim": 8},
    "arcee": {}, "gpt_oss": {"num_key_value_heads": 2}, "jetmoe": {},
    "phimoe": {"num_key_value_heads": 4},
    "biogpt": {}, "gpt_bigcode": {"n_embd": 32, "n_layer": 2, "n_head": 4},
}
# Encoder families beyond the test suite's.
EXTRA_ENCODERS: dict[str, dict] = {
    "electra": {"embedding_size": 32}, "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64},
    "albert": {"embedding_size": 32}, "xlm-roberta": {"max_position_embeddings": 260}, "mpnet": {},
    "deberta": {}, "camembert": {"max_position_embeddings": 260}, "ernie": {}, "roformer": {},
    "megatron-bert": {}, "data2vec-text": {"max_position_embeddings": 260},
}
ITEMS = [
    TextInput("User: how was the day?\nAssistant:", " What a wonderful, delightful day! I love it."),
    TextInput("Reward models score responses;", " the policy learns from the reward."),
    TextInput("def add(a, b):\n", "    return a + b  # numbers 12345"),
]


def build_all(root: Path, only: set[str] | None) -> list[dict]:
    """Every model to measure: {name, kind, path, in_tests, trust_remote_code, suffix_framed}."""
    tiny_models.build_tokenizer(root / "tokenizer")
    tiny_models.build_encoder_tokenizer(root / "encoder-tokenizer")
    decoder_tok = PreTrainedTokenizerFast.from_pretrained(root / "tokenizer")
    encoder_tok = PreTrainedTokenizerFast.from_pretrained(root / "encoder-tokenizer")
    specs = []
    for name in tiny_models.ARCHITECTURES:
        specs.append((name, "one_pass", True, lambda out, n=name: tiny_models.build_model(n, out, root / "tokenizer")))
    for name, overrides in EXTRA_DECODERS.items():
        specs.append((name, "one_pass", False, lambda out, n=name, o=overrides: _generic(n, o, decoder_tok, out)))
    for name in tiny_models.ENCODERS:
        specs.append((name, "expanded", True,
                      lambda out, n=name: tiny_models.build_encoder(n, out, root / "encoder-tokenizer")))
    for name, overrides in EXTRA_ENCODERS.items():
        factory = {name: lambda t, n=name, o=overrides: _config(n, o, t)}
        specs.append((name, "expanded", False,
                      lambda out, n=name, f=factory: tiny_models.build_encoder(n, out, root / "encoder-tokenizer", f)))
    specs.append(("custom-code v_head (Llama)", "custom head", True,
                  lambda out: tiny_models.build_custom_code_rm(out, root / "tokenizer")))
    models = []
    for name, kind, in_tests, build in specs:
        if only and name not in only:
            continue
        out = root / name.replace(" ", "_").replace("(", "").replace(")", "")
        try:
            build(out)
        except Exception as exc:  # an architecture whose tiny config this script does not know how to build
            models.append({"name": name, "kind": kind, "in_tests": in_tests, "build_error": f"{type(exc).__name__}: {exc}"})
            continue
        models.append({"name": name, "kind": kind, "in_tests": in_tests, "path": out,
                       "trust_remote_code": kind == "custom head"})
    return models


def _config(model_type: str, overrides: dict, tokenizer: PreTrainedTokenizerFast):
    ids = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
               bos_token_id=tokenizer.bos_token_id or tokenizer.cls_token_id,
               eos_token_id=tokenizer.eos_token_id or tokenizer.sep_token_id)
    return AutoConfig.for_model(model_type, **{**SMALL, **ids, **overrides})


def _generic(model_type: str, overrides: dict, tokenizer: PreTrainedTokenizerFast, out: Path) -> None:
    config = _config(model_type, overrides, tokenizer)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.out_features == 1:
                module.weight.normal_(0, 1.0)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def reference_scores(spec: dict, runner, items) -> list[dict[int, float]]:  # type: ignore[no-untyped-def]
    """The model's own fp32 forward on each checked prefix, run separately: {position: score} per item."""
    auto = AutoModel if spec["trust_remote_code"] else AutoModelForSequenceClassification
    model = auto.from_pretrained(spec["path"], dtype=torch.float32, trust_remote_code=spec["trust_remote_code"]).eval()
    suffix = list(getattr(runner, "suffix", ()))
    out = []
    for item in items:
        ids = list(item.input_ids)
        wanted = checked_positions(item, expanded=bool(suffix))
        scores = {}
        with torch.inference_mode():
            for t in wanted:
                sequence = ids if t == len(ids) - 1 else ids[: t + 1] + suffix
                scores[t] = forward_score(model(input_ids=torch.tensor([sequence])), runner.loaded.label_index,
                                          len(sequence))
        out.append(scores)
    return out


def checked_positions(item, expanded: bool) -> list[int]:  # type: ignore[no-untyped-def]
    """The positions a reward reads: the prompt's last token, every response token, the last position."""
    p, q = item.response_start, item.response_end
    last = len(item) - 1
    return sorted({*range(max(p - 1, 0), q), last}) if expanded else list(range(max(p - 1, 0), last + 1))


def measure(spec: dict, dtype: str, fp32_served: dict) -> dict:
    row = {"architecture": spec["name"], "kind": spec["kind"], "in_tests": spec["in_tests"], "dtype": dtype}
    started = time.perf_counter()
    try:
        runner = build_hf_runner(ModelLoadSettings(
            model=str(spec["path"]), dtype=dtype, trust_remote_code=spec["trust_remote_code"]))
    except Exception as exc:
        return {**row, "started": False, "error": f"{type(exc).__name__}: {exc}"[:300], "ok": False}
    items = [runner.encode(item, "error", False) for item in ITEMS]
    try:
        served = [r.prefix_scores for r in runner.forward(items)]
    except Exception as exc:  # started, but a request fails: the worst outcome, reported as such
        return {**row, "started": False, "error": f"started but forward failed: {type(exc).__name__}: {exc}"[:300],
                "ok": False}
    row.update(started=True, architecture_class=runner.info.architecture, prefix_scores=runner.info.prefix_scores,
               attention=runner.info.attention_implementation, batch_paths=list(runner.info.batch_paths))
    if dtype == "float32":
        reference = reference_scores(spec, runner, items)
        errors = [abs(s[t] - v) for s, ref in zip(served, reference) for t, v in ref.items()]
        fp32_served[spec["name"]] = (items, served)
        bound = EXACT_FP32
    else:
        ref_items, ref_served = fp32_served[spec["name"]]
        errors, bound = [], math.inf
        for item, ours, ref in zip(items, served, ref_served):
            positions = checked_positions(item, runner.info.prefix_scores == "expanded")
            errors += [abs(ours[t] - ref[t]) for t in positions]
            bound = min(bound, 0.1 * (1 + sum(abs(ref[t]) for t in positions) / len(positions)))
    identity = max(_sum_identity_gap(item, scores) for item, scores in zip(items, served))
    row.update(max_error=max(errors), bound=bound, sum_identity_gap=identity,
               ok=max(errors) <= bound and identity <= 1e-9, seconds=round(time.perf_counter() - started, 2))
    return row


def _sum_identity_gap(item, scores) -> float:  # type: ignore[no-untyped-def]
    result = token_rewards(scores, item.response_start, item.response_end, RedistributionOptions())
    return abs(math.fsum(result.token_rewards) - math.fsum([result.score, -result.prompt_score]))


def print_table(rows: list[dict]) -> None:
    header = f"{'architecture':28} {'kind':11} {'tests':5} {'dtype':9} {'attention':9} {'batch paths':27} " \
             f"{'max error':>10} {'bound':>9} ok"
    print(header)
    print("-" * len(header))
    for r in rows:
        if not r.get("started"):
            print(f"{r['architecture']:28} {r['kind']:11} {'yes' if r['in_tests'] else 'no':5} {r['dtype']:9} "
                  f"REFUSED/FAILED: {r.get('error', r.get('build_error', ''))[:90]}")
            continue
        print(f"{r['architecture']:28} {r['kind']:11} {'yes' if r['in_tests'] else 'no':5} {r['dtype']:9} "
              f"{r['attention']:9} {','.join(r['batch_paths']):27} {r['max_error']:10.2e} {r['bound']:9.2e} "
              f"{'yes' if r['ok'] else 'NO'}")


def markdown_table(rows: list[dict]) -> str:
    """The rows as the table in docs/models.md."""
    lines = ["| architecture | kind | in tests | dtype | attention | batch paths | max error | bound | ok |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head = f"| {r['architecture']} | {r['kind']} | {'yes' if r['in_tests'] else 'no'} | {r['dtype']} |"
        if not r.get("started"):
            reason = (r.get("error") or r.get("build_error") or "").replace("|", "/")[:160]
            lines.append(f"{head} | | | | | refused: {reason} |")
            continue
        lines.append(f"{head} {r['attention']} | {', '.join(r['batch_paths'])} | {r['max_error']:.2e} | "
                     f"{r['bound']:.2e} | {'yes' if r['ok'] else '**no**'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--only", default="", help="comma-separated architecture names")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--markdown", action="store_true", help="also print the rows as a markdown table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    dtypes = ["float32"] + [d for d in args.dtypes.split(",") if d and d != "float32"]
    only = {name for name in args.only.split(",") if name} or None
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        models = build_all(Path(tmp), only)
        fp32_served: dict = {}
        for spec in models:
            if "build_error" in spec:
                rows.append({"architecture": spec["name"], "kind": spec["kind"], "in_tests": spec["in_tests"],
                             "dtype": "-", "started": False, "build_error": spec["build_error"], "ok": False})
                continue
            for dtype in dtypes:
                if dtype != "float32" and spec["name"] not in fp32_served:
                    continue  # no fp32 reference to compare with
                rows.append(measure(spec, dtype, fp32_served))
    print_table(rows)
    if args.markdown:
        print(markdown_table(rows))
    summary = {"rows": len(rows), "ok": sum(r["ok"] for r in rows), "torch": torch.__version__,
               "transformers": __import__("transformers").__version__}
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, default=str) + "\n")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
