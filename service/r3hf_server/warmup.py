"""Warm-up at the largest batch the settings allow, so a setting the device cannot hold fails at start, not mid-run.

The batcher never forms a batch costlier than ``--max-batch-tokens`` (an item longer than the budget runs alone), and
attention makes long rows the costliest per token, so two shapes bound every batch: as many rows of the longest
item as the budget allows, and ``--max-batch-size`` rows as long as the budget then allows.
"""

from __future__ import annotations

import logging
import time

from .errors import WarmUpError
from .runner.base import EncodedItem, ForwardResult, Runner
from .runner.memory import is_out_of_memory, release_cached_memory

log = logging.getLogger(__name__)

# Any id the embedding has: what is measured here is memory and kernels, not scores.
_WARM_UP_TOKEN_ID = 0


def warm_up_shapes(max_length: int, max_batch_tokens: int, max_batch_size: int) -> list[tuple[int, int]]:
    """(rows, tokens per row) of the largest batches the batcher can form."""
    longest_rows = max(1, min(max_batch_size, max_batch_tokens // max_length))
    widest_length = max(1, min(max_length, max_batch_tokens // max_batch_size))
    shapes = [(longest_rows, max_length), (max_batch_size, widest_length)]
    return list(dict.fromkeys(shapes))


def warm_up(runner: Runner, max_batch_tokens: int, max_batch_size: int) -> None:
    max_length = runner.info.max_length
    for rows, length in warm_up_shapes(max_length, max_batch_tokens, max_batch_size):
        started = time.perf_counter()
        try:
            _check(runner.forward(_batch(rows, length)), rows)
        except Exception as exc:
            release_cached_memory()
            message = _explain(exc, rows, length, max_batch_tokens, max_batch_size)
            log.error("cannot start: %s", message)
            raise WarmUpError(message) from exc
        log.info("warm-up: %d x %d tokens in %.2f s", rows, length, time.perf_counter() - started)


def _batch(rows: int, length: int) -> list[EncodedItem]:
    ids = (_WARM_UP_TOKEN_ID,) * length
    return [EncodedItem(input_ids=ids, response_start=0, response_end=length) for _ in range(rows)]


def _check(results: list[ForwardResult], rows: int) -> None:
    if len(results) != rows:
        raise RuntimeError(f"runner returned {len(results)} results for a warm-up batch of {rows}")


def _explain(exc: Exception, rows: int, length: int, max_batch_tokens: int, max_batch_size: int) -> str:
    shape = (
        f"the largest batch the settings allow ({rows} rows x {length} tokens; --max-batch-tokens {max_batch_tokens}, "
        f"--max-batch-size {max_batch_size})"
    )
    if is_out_of_memory(exc):
        return (
            f"{shape} does not fit in device memory: lower --max-batch-tokens (or --max-length, if one item of "
            f"{length} tokens alone does not fit)"
        )
    return f"{shape} failed ({type(exc).__name__}: {exc}); check --max-batch-tokens, --max-batch-size and --max-length"
