"""Credit quality: does a strategy put a response's reward on the words people rated?

The embedded demo reward model was trained (scripts/build_demo_model.py) from the human valence ratings of the VADER
lexicon, with 20% of its words held out of training (demo_model/heldout_words.json). This script writes fresh
responses around those held-out words, with templates and prompts the model never saw, scores them through the
service (in-process, or a running server with --url) once per credit strategy, and reports for each strategy the
Spearman correlation between a word's credit (the rewards of the tokens it overlaps, summed, averaged over the
responses it appears in) and the word's mean human valence.

Two designs: one rated word per response, and two or three rated words per response (where the credit has to be
split between words of different valence, which is what tells the strategies apart). Two forms: plain text
(``prompt + " " + response``) and chat messages rendered by the model's template.

    .venv/bin/python scripts/eval_credit.py                 # full table (one to two minutes on 2 CPU cores)
    .venv/bin/python scripts/eval_credit.py --words 100     # a quick subset
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from r3hf_client.options import ItemForm, Redistribution, choices

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = REPO / "service" / "r3hf_server" / "demo_model"
STRATEGIES = choices(Redistribution)  # every strategy the server offers, from the one list
TEXT_FORMS = tuple(form for form in choices(ItemForm) if form != "ids")  # the responses are written as text

# Written for this evaluation: none of them appears in the demo model's training data, and none of their words is in
# the lexicon (checked at start-up), so only the slot words carry valence.
PROMPTS = ["How did the parade go?", "What about the lecture?", "Tell me about the station this morning."]
ONE_SLOT = ["the parade was {}.", "i found the lecture {}.", "the station looked {} this morning.", "in a word, {}"]
MULTI_SLOT = [
    "the parade was {} but the music was {}.",
    "{} at first, then {}.",
    "the lecture felt {}, the hall was {} and the coffee was {}.",
    "the station looked {} and {} this morning.",
    "i would call the lecture {}, the speaker {}",
]


@dataclass(frozen=True)
class Response:
    prompt: str
    text: str
    slots: tuple[tuple[int, int, str], ...]  # (start, end, word) in the response text


def load_valence() -> dict[str, float]:
    """Mean human rating of every plain lowercase word in the VADER lexicon (the file the demo RM was built from)."""
    import vaderSentiment

    lexicon = {}
    path = Path(vaderSentiment.__file__).parent / "vader_lexicon.txt"
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 4 and re.fullmatch(r"[a-z]+", fields[0]):
            lexicon[fields[0]] = float(fields[1])
    return lexicon


def check_neutral(valence: dict[str, float]) -> None:
    words = {w for text in PROMPTS + ONE_SLOT + MULTI_SLOT for w in re.findall(r"[a-z]+", text.lower())}
    rated = sorted(words & valence.keys())
    if rated:
        raise SystemExit(f"eval_credit: template words {rated} are in the lexicon and would carry valence")


def fill(template: str, words: Sequence[str], prompt: str) -> Response:
    pieces = template.split("{}")
    text, slots = "", []
    for piece, word in zip(pieces, words):
        text += piece
        slots.append((len(text), len(text) + len(word), word))
        text += word
    return Response(prompt, text + pieces[-1], tuple(slots))


def build_responses(words: Sequence[str], per_word: int, multi: bool, seed: int) -> list[Response]:
    """Every word appears ``per_word`` times; multi-slot responses mix words drawn at random (no word twice)."""
    rng = random.Random(seed)
    pool = [w for w in words for _ in range(per_word)]
    rng.shuffle(pool)
    responses = []
    while pool:
        template = rng.choice(MULTI_SLOT if multi else ONE_SLOT)
        wanted = template.count("{}")
        picked: list[str] = []
        for word in list(pool):
            if len(picked) == wanted:
                break
            if word not in picked:
                picked.append(word)
                pool.remove(word)
        if len(picked) < wanted:  # the last few leftovers: a one-slot response each
            for word in picked:
                responses.append(fill(ONE_SLOT[0], [word], rng.choice(PROMPTS)))
            continue
        responses.append(fill(template, picked, rng.choice(PROMPTS)))
    return responses


def as_item(response: Response, form: str) -> dict:
    if form == "chat":
        return {"messages": [{"role": "user", "content": response.prompt},
                             {"role": "assistant", "content": response.text}]}
    return {"prompt": response.prompt + " ", "response": response.text}


def word_credit(result, start: int, end: int) -> float:  # type: ignore[no-untyped-def]
    """Sum of the rewards of every token that overlaps [start, end) of the response."""
    return float(sum(r for r, (s, e) in zip(result.token_rewards, result.offsets) if s < end and e > start))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of average ranks (ties share the mean of their ranks); nan if either side is constant."""
    def average_ranks(values: Sequence[float]) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        distinct, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
        first_rank = np.concatenate(([0], np.cumsum(counts)[:-1]))
        return (first_rank + (counts - 1) / 2.0)[inverse]

    rx, ry = average_ranks(x), average_ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def evaluate(client, responses: list[Response], form: str, strategy: str, valence: dict[str, float]) -> float:  # type: ignore[no-untyped-def]
    answer = client.token_rewards([as_item(r, form) for r in responses], redistribution=strategy, return_tokens=True)
    credits: dict[str, list[float]] = {}
    for response, result in zip(responses, answer.results):
        if result.template_changed_response:
            raise SystemExit(f"eval_credit: the chat template changed {response.text!r}; offsets would not match")
        for start, end, word in response.slots:
            credits.setdefault(word, []).append(word_credit(result, start, end))
    words = sorted(credits)
    return spearman([float(np.mean(credits[w])) for w in words], [valence[w] for w in words])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="A running r3hf server serving the demo model (default: load it in-process).")
    parser.add_argument("--words", type=int, default=None, help="Use only this many held-out words (default: all).")
    parser.add_argument("--per-word", type=int, default=3, help="Responses each word appears in.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="Also write the numbers here.")
    args = parser.parse_args(argv)

    from r3hf_server.commands.backend import reward_client
    from r3hf_server.settings import Settings

    valence = load_valence()
    check_neutral(valence)
    held_out = json.loads((DEMO_MODEL / "heldout_words.json").read_text())["heldout_words"]
    words = held_out[: args.words] if args.words else held_out
    designs = {"1 word": False, "2-3 words": True}
    table: dict[str, dict[str, float]] = {s: {} for s in STRATEGIES}
    started = time.perf_counter()
    backend = {"url": args.url} if args.url else {"model": str(DEMO_MODEL), "log_level": "warning"}
    with reward_client(backend, Settings, chunk_size=512) as client:
        for design, multi in designs.items():
            responses = build_responses(words, args.per_word, multi, args.seed)
            for form in TEXT_FORMS:
                for strategy in STRATEGIES:
                    table[strategy][f"{form}, {design}"] = evaluate(client, responses, form, strategy, valence)
    print_table(table, len(words), args.per_word, time.perf_counter() - started)
    if args.json:
        args.json.write_text(json.dumps({"words": len(words), "per_word": args.per_word, "spearman": table}, indent=2))
    return 0


def print_table(table: dict[str, dict[str, float]], n_words: int, per_word: int, seconds: float) -> None:
    columns = list(next(iter(table.values())))
    print(f"Spearman(word credit, mean VADER valence) over {n_words} held-out words, each in {per_word} responses "
          f"({seconds:.0f} s)\n")
    print("| strategy | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for strategy, row in table.items():
        cells = ["n/a" if np.isnan(row[c]) else f"{row[c]:.3f}" for c in columns]
        print(f"| {strategy} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
