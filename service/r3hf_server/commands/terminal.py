"""Token credit in a terminal: each response token on a background coloured by its reward, plus a table."""

from __future__ import annotations

from collections.abc import Sequence

from r3hf_client.wire import TokenRewardResult

POSITIVE = (33, 102, 172)  # the playground's palette: blue for credit, red for blame
NEGATIVE = (178, 24, 43)
RESET = "\x1b[0m"


def token_texts(result: TokenRewardResult, response: str | None) -> list[str]:
    """What each token covers in the response string (gaps between tokens go to the next token); the raw token
    strings when there are no usable offsets (ids form, or a chat template that rewrote the response)."""
    n = len(result.token_rewards)
    if result.offsets is None or response is None or result.template_changed_response:
        tokens = result.tokens or [f"#{i}" for i in range(n)]
        return [clean_token(t) for t in tokens]
    texts, cursor = [], 0
    for _, end in result.offsets:
        # Byte-level tokens inside one character report overlapping spans: each character is shown once.
        texts.append(response[cursor:end] if end > cursor else "")
        cursor = max(cursor, end)
    return texts


def clean_token(token: str) -> str:
    """Byte-level BPE and SentencePiece markers back to the whitespace they stand for."""
    return token.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\n").replace("ĉ", "\t")


def colour_for(reward: float, scale: float) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(background, foreground) for a reward on a diverging white-centred scale saturating at ``scale``."""
    strength = min(1.0, abs(reward) / scale) if scale > 0 else 0.0
    target = POSITIVE if reward >= 0 else NEGATIVE
    background = tuple(round(255 + (c - 255) * strength) for c in target)
    foreground = (255, 255, 255) if strength > 0.55 else (17, 17, 17)
    return background, foreground  # type: ignore[return-value]


def coloured_response(texts: Sequence[str], rewards: Sequence[float], colour: bool) -> str:
    if not colour:
        return "".join(f"[{text}]" for text in texts)
    scale = max((abs(r) for r in rewards), default=0.0)
    pieces = []
    for text, reward in zip(texts, rewards):
        (br, bg, bb), (fr, fg, fb) = colour_for(reward, scale)
        pieces.append(f"\x1b[48;2;{br};{bg};{bb}m\x1b[38;2;{fr};{fg};{fb}m{text or '·'}{RESET}")
    return "".join(pieces)


def reward_table(texts: Sequence[str], result: TokenRewardResult) -> list[str]:
    rows = [f"{'#':>4}  {'token':<18} {'reward':>11} {'running sum':>12}"]
    running = 0.0
    for index, (text, reward) in enumerate(zip(texts, result.token_rewards)):
        running += reward
        token = result.tokens[index] if result.tokens else text
        rows.append(f"{index:>4}  {token!r:<18} {reward:>+11.4f} {running:>+12.4f}")
    return rows
