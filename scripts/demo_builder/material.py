"""The text material and the lexicon: prompts, response templates, VADER ratings, word spans."""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass
from pathlib import Path

import vaderSentiment

REPO_ROOT = Path(__file__).resolve().parents[2]
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
