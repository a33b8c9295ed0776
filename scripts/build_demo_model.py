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

Everything is seeded (``--seed``); CPU only, ``torch.set_num_threads(2)``.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# Rayon thread count changes the BPE trainer's work split; pin it so the
# tokenizer is reproducible. Must be set before `tokenizers` is imported.
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import vaderSentiment  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    LlamaConfig,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "service" / "r3hf_server" / "demo_model"
LEXICON_PATH = Path(vaderSentiment.__file__).parent / "vader_lexicon.txt"

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
SPECIAL_TOKENS = [BOS, EOS, PAD, UNK, *ROLE_TOKENS]

# bos, then per message "<|role|>\n{content}</s>\n"; the generation prompt
# opens an assistant turn whose content (the response) follows directly.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

MODEL_MAX_LENGTH = 512
POS_THRESHOLD, NEG_THRESHOLD = 1.5, -1.5  # "clearly" positive / negative words

# --------------------------------------------------------------------------
# Text material. Every non-slot word below must be absent from the lexicon
# (checked in `assert_neutral`), so only slot words carry valence.
# --------------------------------------------------------------------------
TRAIN_PROMPTS = [
    "How was your day?",
    "What do you think of the movie?",
    "How did the meeting go?",
    "Tell me about your weekend.",
    "How was the food at the new place?",
    "What did you think of the book?",
    "How was the trip?",
    "Can you describe the concert last night?",
    "How is the new job going?",
    "How was the weather on the coast?",
    "How did your exam go?",
    "Describe your neighbor in a few words.",
    "How was the hotel?",
    "What is your view of the plan?",
]
EVAL_PROMPTS = [
    "How did the evening go?",
    "What can you say about the show?",
    "How were things at home today?",
]

# "{}" marks a lexicon-word slot.
TRAIN_CORES = [
    "it was a {} day.",
    "the movie was {}.",
    "i felt {} about it.",
    "the food was {} and the service was {}.",
    "we had a {} time.",
    "that sounds {}.",
    "the whole thing was {}, then {}.",
    "my week has been {}.",
    "it was {}, {} and {}.",
    "the ending seemed {} to me.",
    "everyone there was {}.",
    "{} is the word i would use.",
    "there was a {} moment near the end.",
    "the {} part came after the {} part.",
    "she called it {}.",
    "our trip was {} from start to finish.",
    "the weather was {} all day.",
    "his reply was {} and a bit {}.",
    "{}.",
    "{}, {}.",
    "{}!",
    "the room looked {}.",
    "they said the plan was {}.",
    "i would say {}, maybe {}.",
    "a {} book with a {} cover.",
]
OPENERS = ["", "", "", "", "Right, ", "I think ", "So, ", "Overall, ", "In short, ", "Actually, "]
CLOSERS = ["", "", "", "", " I guess.", " That is all.", " We will see.", " Anyway."]
FILLER_WORDS = (
    "the a it was and then so we i they that this day movie food time thing place week "
    "today there of to at in on with after before very just all some more were is are had "
    "has been my our their one two again also quite around about people story trip meal "
    "show work home"
).split()

# Held-out evaluation sentences use templates never seen in training.
EVAL_CORES = [
    "the concert was {}.",
    "i would describe the trip as {}.",
    "today felt {} to me.",
    "the new phone is {}.",
    "the town seemed {} and {}.",
]


# --------------------------------------------------------------------------
# Lexicon
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    mean: float
    ratings: tuple[int, ...]


def load_lexicon(path: Path = LEXICON_PATH) -> dict[str, Entry]:
    """Plain lowercase alphabetic words only (emoticons/abbrev. with symbols dropped)."""
    lexicon = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) < 4 or not re.fullmatch(r"[a-z]+", parts[0]):
            continue
        lexicon[parts[0]] = Entry(float(parts[1]), tuple(ast.literal_eval(parts[3])))
    return lexicon


def split_words(lexicon: dict[str, Entry], frac: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministic random train / held-out split of the lexicon words."""
    words = sorted(lexicon)
    random.Random(seed).shuffle(words)
    n_held = int(round(frac * len(words)))
    return sorted(words[n_held:]), sorted(words[:n_held])


def assert_neutral(lexicon: dict[str, Entry]) -> None:
    """Filler text must carry no lexicon valence, otherwise labels would be wrong."""
    texts = TRAIN_PROMPTS + EVAL_PROMPTS + TRAIN_CORES + EVAL_CORES + OPENERS + CLOSERS + FILLER_WORDS
    bad = {w for t in texts for w in re.findall(r"[a-z]+", t.lower()) if w in lexicon}
    assert not bad, f"filler text contains lexicon words: {sorted(bad)}"


# --------------------------------------------------------------------------
# Responses with tracked word spans
# --------------------------------------------------------------------------
@dataclass
class Response:
    text: str
    word_ends: list[int]  # char end of every word: the legal truncation points
    slots: list[tuple[int, int, str]]  # (start, end, lexicon word) for each slot


def render(core: str, slot_words: list[str], opener: str = "", closer: str = "") -> Response:
    """Fill the "{}" slots, capitalise the first letter and record spans."""
    pieces = core.split("{}")
    assert len(pieces) == len(slot_words) + 1
    text, slot_starts = opener, []
    for piece, word in zip(pieces, slot_words):
        text += piece
        slot_starts.append(len(text))
        text += word
    text += pieces[-1] + closer
    text = text[:1].upper() + text[1:]  # keeps length, so spans stay valid
    slots = [(s, s + len(w), w) for s, w in zip(slot_starts, slot_words)]
    word_ends = [m.end() for m in re.finditer(r"[A-Za-z']+", text)]
    return Response(text, word_ends, slots)


def random_salad(rng: random.Random, slot_words: list[str]) -> Response:
    """Loose word sequence: teaches that valence does not depend on grammar/position."""
    n_fill = rng.randint(2, 10)
    items = [rng.choice(FILLER_WORDS) for _ in range(n_fill)] + ["{}"] * len(slot_words)
    rng.shuffle(items)
    return render(" ".join(items) + rng.choice([".", "!", ""]), slot_words)


def format_prompt(prompt: str, fmt: str) -> tuple[str, bool]:
    """Text preceding the response, and whether the tokenizer must add BOS.

    "chat" is exactly what `apply_chat_template(add_generation_prompt=True)`
    renders (asserted in `build_tokenizer`); it already contains BOS.
    """
    if fmt == "chat":
        return f"{BOS}<|user|>\n{prompt}{EOS}\n<|assistant|>\n", False
    return prompt + {"space": " ", "newline": "\n", "none": ""}[fmt], True


FORMATS = ["chat", "chat", "space", "space", "newline", "none"]
# What the chat template writes after an assistant message (end of turn).
CHAT_SUFFIX = EOS + "\n"


# --------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------
def tokenizer_corpus(train_words: list[str], seed: int, repeats: int = 3) -> list[str]:
    """Prompt + response text as in training (all formats); every training word
    appears `repeats` times. Held-out words never appear, so at evaluation
    they are split into sub-words the model has seen."""
    rng = random.Random(seed)
    words = [w for _ in range(repeats) for w in train_words]
    rng.shuffle(words)
    texts = []
    while words:
        core = rng.choice(TRAIN_CORES)
        k = core.count("{}")
        slot_words, words = words[:k], words[k:]
        if len(slot_words) < k:
            break
        resp = render(core, slot_words, rng.choice(OPENERS), rng.choice(CLOSERS))
        # all input formats, so e.g. a response word right after "\n" gets merges too
        texts.append(format_prompt(rng.choice(TRAIN_PROMPTS), rng.choice(FORMATS))[0] + resp.text)
    return texts


def build_tokenizer(train_words: list[str], vocab_size: int, seed: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(train_words, seed), trainer=trainer)
    # `tokenizer("text")` -> <s> + tokens; no EOS (scores are read at the last real token).
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A {BOS}:1 $B:1",
        special_tokens=[(BOS, tok.token_to_id(BOS))],
    )
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=MODEL_MAX_LENGTH,
        padding_side="right",
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    rendered = hf_tok.apply_chat_template(
        [{"role": "user", "content": "Hi?"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == format_prompt("Hi?", "chat")[0], repr(rendered)
    rendered = hf_tok.apply_chat_template(
        [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Yo."}], tokenize=False
    )
    assert rendered == format_prompt("Hi?", "chat")[0] + "Yo." + CHAT_SUFFIX, repr(rendered)
    return hf_tok


# --------------------------------------------------------------------------
# Preference batches
# --------------------------------------------------------------------------
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


# --------------------------------------------------------------------------
# Model + training
# --------------------------------------------------------------------------
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


# --------------------------------------------------------------------------
# Acceptance checks (run on the saved artifacts, through the HF interfaces)
# --------------------------------------------------------------------------
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


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------
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
