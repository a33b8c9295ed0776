"""Acceptance checks, run on the saved artifacts through the Hugging Face interfaces."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from .material import (
    EVAL_CORES,
    EVAL_PROMPTS,
    NEG_THRESHOLD,
    POS_THRESHOLD,
    Response,
    format_prompt,
    load_lexicon,
    render,
)
from .training import prefix_scores

def spearman(x, y) -> float:
    """Rank (ties -> average rank) then Pearson; numpy only."""
    def ranks(v):
        v = np.asarray(v, dtype=float)
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=float)
        for val in np.unique(v):  # average ranks of ties
            m = v == val
            if m.sum() > 1:
                r[m] = r[m].mean()
        return r
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / np.sqrt((rx ** 2).sum() * (ry ** 2).sum()))


@dataclass
class Scored:
    text: str  # full model input text
    resp: Response
    resp_start: int
    offsets: list[tuple[int, int]]
    token_rewards: dict[int, float]  # token index -> reward, response tokens only
    final_score: float


def model_input(hf_tok, prompt: str, resp: Response, fmt: str) -> tuple[str, int, bool]:
    """(text, response char start, add BOS?) the way the service builds it.

    Text form: prompt + response, tokenizer adds BOS. Chat form: the whole
    conversation rendered by the chat template (it writes BOS and the
    end-of-turn suffix itself), so no special tokens are added.
    """
    if fmt != "chat":
        prefix, add_bos = format_prompt(prompt, fmt)
        return prefix + resp.text, len(prefix), add_bos
    head = hf_tok.apply_chat_template([{"role": "user", "content": prompt}],
                                      tokenize=False, add_generation_prompt=True)
    text = hf_tok.apply_chat_template([{"role": "user", "content": prompt},
                                       {"role": "assistant", "content": resp.text}], tokenize=False)
    assert text.startswith(head + resp.text)
    return text, len(head), False


@torch.no_grad()
def score_responses(model, hf_tok, items: list[tuple[str, Response]], fmt: str, bs: int = 64) -> list[Scored]:
    """Per-token rewards as the service computes them, from one forward pass.

    r_t = score[t] - score[t-1] over the response tokens (the first one against
    the prompt's last token); any change over a template suffix after the
    response goes to the last response token; the sequence score is the score
    at the last position.
    """
    out = []
    for i in range(0, len(items), bs):
        chunk = items[i: i + bs]
        built = [model_input(hf_tok, prompt, resp, fmt) for prompt, resp in chunk]
        add_bos = {b[2] for b in built}
        assert len(add_bos) == 1
        enc = hf_tok([b[0] for b in built], add_special_tokens=add_bos.pop(), return_offsets_mapping=True,
                     padding=True, return_tensors="pt")
        scores = prefix_scores(model, enc["input_ids"])
        lengths = enc["attention_mask"].sum(1)
        for row, ((text, start, _), (_, resp)) in enumerate(zip(built, chunk)):
            n, end = int(lengths[row]), start + len(resp.text)
            offs = [tuple(o) for o in enc["offset_mapping"][row, :n].tolist()]
            inside = [t for t, (s, e) in enumerate(offs) if e > s and e > start and s < end]
            rewards = {t: float(scores[row, t] - scores[row, t - 1]) for t in inside}
            rewards[inside[-1]] += float(scores[row, n - 1] - scores[row, inside[-1]])
            out.append(Scored(text, resp, start, offs, rewards, float(scores[row, n - 1])))
    return out


def word_credit(sc: Scored, span: tuple[int, int]) -> float:
    ws, we = sc.resp_start + span[0], sc.resp_start + span[1]
    return sum(r for t, r in sc.token_rewards.items() if sc.offsets[t][0] < we and sc.offsets[t][1] > ws)


def token_in_rated_word(sc: Scored, t: int, lexicon, positive: bool) -> bool:
    s, e = sc.offsets[t]
    for m in re.finditer(r"[A-Za-z']+", sc.resp.text):
        ws, we = sc.resp_start + m.start(), sc.resp_start + m.end()
        entry = lexicon.get(m.group().lower())
        if s < we and e > ws and entry is not None and (entry.mean > 0) == positive:
            return True
    return False


def run_checks(out_dir: Path, seed: int = 0, n_max: int = 300) -> dict:
    lexicon = load_lexicon()
    held = json.loads((out_dir / "heldout_words.json").read_text())["heldout_words"]
    hf_tok = AutoTokenizer.from_pretrained(out_dir)
    model = AutoModelForSequenceClassification.from_pretrained(out_dir).eval()
    assert hf_tok.is_fast
    rng = random.Random(seed + 99)
    pos = [w for w in held if lexicon[w].mean >= POS_THRESHOLD]
    neg = [w for w in held if lexicon[w].mean <= NEG_THRESHOLD]
    one_slot = [c for c in EVAL_CORES if c.count("{}") == 1]
    results = {"n_heldout_words": len(held), "n_heldout_pos": len(pos), "n_heldout_neg": len(neg)}

    for fmt in ("space", "chat"):
        # (a) positive twin outscores negative twin
        rp, rn = rng.sample(pos, len(pos)), rng.sample(neg, len(neg))
        twins = []
        for i, (wp, wn) in enumerate(list(zip(rp, rn))[:n_max]):
            core, prompt = one_slot[i % len(one_slot)], EVAL_PROMPTS[i % len(EVAL_PROMPTS)]
            twins.append(((prompt, render(core, [wp])), (prompt, render(core, [wn]))))
        sp = score_responses(model, hf_tok, [t[0] for t in twins], fmt)
        sn = score_responses(model, hf_tok, [t[1] for t in twins], fmt)
        results[f"a_twin_acc_{fmt}"] = float(np.mean([a.final_score > b.final_score for a, b in zip(sp, sn)]))

        # (b) argmax / argmin token lies in a positive / negative rated word
        hits = []
        for words, positive in ((pos, True), (neg, False)):
            items = []
            for i in range(min(n_max, len(words))):
                core, prompt = EVAL_CORES[i % len(EVAL_CORES)], EVAL_PROMPTS[i % len(EVAL_PROMPTS)]
                items.append((prompt, render(core, rng.sample(words, core.count("{}")))))
            for sc in score_responses(model, hf_tok, items, fmt):
                pick = max if positive else min
                t = pick(sc.token_rewards, key=sc.token_rewards.get)
                hits.append(token_in_rated_word(sc, t, lexicon, positive))
        results[f"b_extreme_token_hit_{fmt}"] = float(np.mean(hits))

        # (c) Spearman(word credit, mean human rating) over all held-out words
        items, owners = [], []
        for w in held:
            for j, core in enumerate(one_slot[:3]):
                items.append((EVAL_PROMPTS[j], render(core, [w])))
                owners.append(w)
        credits: dict[str, list[float]] = {w: [] for w in held}
        for w, sc in zip(owners, score_responses(model, hf_tok, items, fmt)):
            s, e, _ = sc.resp.slots[0]
            credits[w].append(word_credit(sc, (s, e)))
        results[f"c_spearman_{fmt}"] = spearman([np.mean(credits[w]) for w in held],
                                                [lexicon[w].mean for w in held])
    return results


def demo_examples(out_dir: Path) -> None:
    """Show per-token rewards on a couple of readable sentences."""
    hf_tok = AutoTokenizer.from_pretrained(out_dir)
    model = AutoModelForSequenceClassification.from_pretrained(out_dir).eval()
    items = [("How was your day?", render("it was a {} day.", [w])) for w in ("wonderful", "terrible")]
    for sc in score_responses(model, hf_tok, items, "space"):
        toks = "  ".join(f"{sc.text[slice(*sc.offsets[t])]!r}:{r:+.2f}" for t, r in sc.token_rewards.items())
        print(f"  score {sc.final_score:+.2f}  {sc.resp.text!r}\n    {toks}")


def print_checks(results: dict) -> None:
    targets = {"a_twin_acc": ">= 0.90", "b_extreme_token_hit": ">= 0.80", "c_spearman": ">= 0.60"}
    print(f"\nheld-out words: {results['n_heldout_words']} "
          f"(clearly pos {results['n_heldout_pos']}, clearly neg {results['n_heldout_neg']})")
    print(f"{'check':<24}{'plain (space)':>15}{'chat':>10}{'target':>10}")
    for key, tgt in targets.items():
        print(f"{key:<24}{results[key + '_space']:>15.3f}{results[key + '_chat']:>10.3f}{tgt:>10}")
