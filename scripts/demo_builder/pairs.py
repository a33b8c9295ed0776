"""Preference batches: twin responses, their prefixes, and the simulated annotator's choices."""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer

from .material import (
    CHAT_SUFFIX,
    CLOSERS,
    FORMATS,
    OPENERS,
    Response,
    TRAIN_CORES,
    TRAIN_PROMPTS,
    format_prompt,
    random_salad,
    render,
)

class WordCycle:
    """Endless shuffled pass over the training words, so every word gets used."""

    def __init__(self, words: list[str], rng: random.Random):
        self.words, self.rng, self.queue = list(words), rng, []

    def take(self, n: int) -> list[str]:
        out = []
        while len(out) < n:
            if not self.queue:
                self.queue = self.words[:]
                self.rng.shuffle(self.queue)
            out.append(self.queue.pop())
        return out


@dataclass
class Candidate:
    """A (possibly truncated) response inside a batch row."""

    row: int
    pos: int  # token index of its last token
    slots: Counter  # lexicon words it contains


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, T] right padded
    idx1: torch.Tensor  # flat indices (row * T + pos) of candidate 1
    idx2: torch.Tensor
    sign: torch.Tensor  # +1: candidate 1 preferred, -1: candidate 2 preferred


def annotator_prefers_first(c1: Counter, c2: Counter, lexicon, rng: random.Random) -> bool:
    """Simulated human vote: draw one of the 10 human ratings per differing word."""
    total = sum(rng.choice(lexicon[w].ratings) for w in (c1 - c2).elements())
    total -= sum(rng.choice(lexicon[w].ratings) for w in (c2 - c1).elements())
    return total > 0 if total != 0 else rng.random() < 0.5


def swap_slots(resp: Response, new_words: list[str]) -> Response:
    """Same response with its slot words replaced (keeps the salad layout)."""
    text, slots, shift = resp.text, [], 0
    for (s, e, _), word in zip(resp.slots, new_words):
        s, e = s + shift, e + shift
        text = text[:s] + (word.capitalize() if s == 0 else word) + text[e:]
        slots.append((s, s + len(word), word))
        shift += len(word) - (e - s)
    return Response(text, [m.end() for m in re.finditer(r"[A-Za-z']+", text)], slots)


def twin_group(rng: random.Random, cycle: WordCycle) -> tuple[str, str, Response, Response]:
    """Two responses to one prompt that differ in one slot word (sometimes all)."""
    prompt, fmt = rng.choice(TRAIN_PROMPTS), rng.choice(FORMATS)
    if rng.random() < 0.25:
        k = rng.randint(1, 4)
        words_a = cycle.take(k)
        words_b = list(words_a)
        words_b[rng.randrange(k)] = cycle.take(1)[0]
        # Salad twins keep the same layout: render A, then swap the words in B.
        resp_a = random_salad(rng, words_a)
        resp_b = swap_slots(resp_a, words_b)
    else:
        core = rng.choice(TRAIN_CORES)
        k = core.count("{}")
        opener, closer = rng.choice(OPENERS), rng.choice(CLOSERS)
        words_a = cycle.take(k)
        words_b = cycle.take(k) if rng.random() < 0.2 else list(words_a)
        if words_b == words_a:
            words_b[rng.randrange(k)] = cycle.take(1)[0]
        resp_a = render(core, words_a, opener, closer)
        resp_b = render(core, words_b, opener, closer)
    return prompt, fmt, resp_a, resp_b


def cut_positions(enc, resp_start: int, resp: Response) -> list[int] | None:
    """Token index of the last token of each truncation (cut 0 = empty response).

    Byte-level BPE never merges across word boundaries, so the truncated
    response tokenizes to a prefix of the full one; with causal attention its
    score equals the full sequence's score at that position (checked in
    `assert_prefix_consistency`). That lets one forward pass score all cuts.
    """
    end_to_tok = {}
    for i, (s, e) in enumerate(enc.offsets):
        if e > s:
            end_to_tok[e] = i  # last token ending at e
    last_prompt = max(i for i, (s, e) in enumerate(enc.offsets) if e <= resp_start)
    cuts = [last_prompt]
    for end in resp.word_ends:
        if resp_start + end not in end_to_tok:
            return None
        cuts.append(end_to_tok[resp_start + end])
    return cuts


def slots_before(resp: Response, char_end: int) -> Counter:
    return Counter(w for s, e, w in resp.slots if e <= char_end)


def make_batch(tok: Tokenizer, lexicon, cycle: WordCycle, rng: random.Random,
               n_groups: int, pad_id: int, n_wide: int = 3) -> Batch:
    """`n_groups` twin groups; every response contributes all its word-boundary
    truncations as candidates, compared by the simulated annotator."""
    rows, pairs = [], []  # pairs: (cand1, cand2)
    for _ in range(n_groups):
        prompt, fmt, resp_a, resp_b = twin_group(rng, cycle)
        prefix, add_bos = format_prompt(prompt, fmt)
        # Chat rows usually carry the end-of-turn suffix too, as when the whole
        # conversation (assistant turn included) is rendered with the template.
        suffix = CHAT_SUFFIX if fmt == "chat" and rng.random() < 0.75 else ""
        group = []
        for resp in (resp_a, resp_b):
            text = prefix + resp.text + suffix
            enc = tok.encode(text, add_special_tokens=add_bos)
            cuts = cut_positions(enc, len(prefix), resp)
            if cuts is None:  # never expected; skip rather than mislabel
                continue
            row = len(rows)
            rows.append(enc.ids)
            ends = [0] + resp.word_ends
            cand = [Candidate(row, pos, slots_before(resp, end)) for pos, end in zip(cuts, ends)]
            if suffix:
                # Same response with the end-of-turn marker: adds no words, so
                # the annotator is indifferent (coin flip) -> suffix gets ~0 reward.
                cand.append(Candidate(row, len(enc.ids) - 1, cand[-1].slots))
            # adjacent cuts: the credit of each single word (fillers -> ties)
            pairs += [(cand[i], cand[i + 1]) for i in range(len(cand) - 1)]
            # a few wider spans: credit of several words together
            for _ in range(n_wide):
                i, j = sorted(rng.sample(range(len(cand)), 2))
                pairs.append((cand[i], cand[j]))
            group.append(cand)
        if len(group) == 2:
            a, b = group
            pairs.append((a[-1], b[-1]))  # the full twins
            if len(a) == len(b):
                c = rng.randrange(1, len(a))
                pairs.append((a[c], b[c]))  # twins truncated at the same word
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    idx1, idx2, sign = [], [], []
    for c1, c2 in pairs:
        idx1.append(c1.row * T + c1.pos)
        idx2.append(c2.row * T + c2.pos)
        sign.append(1.0 if annotator_prefers_first(c1.slots, c2.slots, lexicon, rng) else -1.0)
    return Batch(ids, torch.tensor(idx1), torch.tensor(idx2), torch.tensor(sign))


def assert_prefix_consistency(tok: Tokenizer, rng: random.Random, cycle: WordCycle, n: int = 200) -> None:
    """Tokenizing a truncated response must give a prefix of the full tokens."""
    for _ in range(n):
        prompt, fmt, resp, _ = twin_group(rng, cycle)
        prefix, add_bos = format_prompt(prompt, fmt)
        full = tok.encode(prefix + resp.text, add_special_tokens=add_bos)
        cuts = cut_positions(full, len(prefix), resp)
        assert cuts is not None, resp.text
        for c, end in zip(cuts[1:], resp.word_ends):
            part = tok.encode(prefix + resp.text[:end], add_special_tokens=add_bos).ids
            assert part == full.ids[: c + 1], (resp.text, end)
