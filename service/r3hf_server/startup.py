"""``r3hf serve`` start-up failures as one line (cause + what to do).

A failure exits 2 with ``r3hf: cannot serve MODEL: REASON`` on stderr; the traceback is logged only with
``--log-level debug``, since what a user needs is the reason, not the stack.
"""

from __future__ import annotations

import logging
import sys
import traceback

from .errors import ModelRefusedError
from .settings import Settings

log = logging.getLogger(__name__)

STARTUP_FAILURE_EXIT_CODE = 2


def settings_failure_line(exc: Exception) -> str:
    """A pydantic ValidationError as one line: each bad setting and why."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ())) or 'settings'}: {e.get('msg', '')}" for e in errors()]
        return "r3hf: invalid settings: " + "; ".join(parts)
    return f"r3hf: invalid settings: {exc}"


def failure_line(settings: Settings, exc: BaseException) -> str:
    """One line naming the cause and what to do. Unforeseen exceptions keep their type and first line."""
    if isinstance(exc, ModelRefusedError):
        reason = str(exc)
    elif isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        reason = "out of memory while loading: use a smaller --dtype (bfloat16), a GPU, or --device-map auto"
    else:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        reason = f"{type(exc).__name__}: {first} (run with --log-level debug for the traceback)"
    return f"r3hf: cannot serve {settings.model}: {reason}"


def report_failure(settings: Settings, exc: BaseException) -> int:
    if settings.log_level == "debug":
        log.debug("start-up failed:\n%s", "".join(traceback.format_exception(exc)))
    print(failure_line(settings, exc), flush=True, file=sys.stderr)
    return STARTUP_FAILURE_EXIT_CODE
