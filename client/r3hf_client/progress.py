"""Optional progress reporting for large jobs: tqdm when it is installed, a plain stderr line otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol, Union

ProgressSpec = Union[bool, Callable[[int, int], None], None]


class Progress(Protocol):
    def advance(self, items: int) -> None: ...

    def close(self) -> None: ...


class _Silent:
    def advance(self, items: int) -> None:
        pass

    def close(self) -> None:
        pass


class _Callback:
    """Calls ``report(done, total)`` after every chunk, e.g. to feed a trainer's own logger."""

    def __init__(self, report: Callable[[int, int], None], total: int) -> None:
        self.report, self.total, self.done = report, total, 0

    def advance(self, items: int) -> None:
        self.done += items
        self.report(self.done, self.total)

    def close(self) -> None:
        pass


class _StderrLine:
    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0

    def advance(self, items: int) -> None:
        self.done += items
        print(f"\rr3hf: {self.done}/{self.total} items scored", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr)


class _Tqdm:
    def __init__(self, total: int) -> None:
        from tqdm.auto import tqdm  # optional: only when a progress bar was asked for

        self.bar = tqdm(total=total, unit="item", desc="r3hf")

    def advance(self, items: int) -> None:
        self.bar.update(items)

    def close(self) -> None:
        self.bar.close()


def make_progress(spec: ProgressSpec, total: int) -> Progress:
    """``True``: a bar (tqdm if installed); a callable: ``spec(done, total)`` per chunk; ``None``/``False``: nothing."""
    if not spec:
        return _Silent()
    if callable(spec):
        return _Callback(spec, total)
    try:
        return _Tqdm(total)
    except ImportError:
        return _StderrLine(total)
