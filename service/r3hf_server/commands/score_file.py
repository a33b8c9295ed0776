"""``r3hf score``: a JSONL file of items in, a JSONL file of results out, resumable.

Each input line is one item in any of the API's forms. Each output line is that item's result with ``index`` set to
the item's position in the input (0-based, blank lines not counted). Results are appended and flushed one chunk at
a time, so an interrupted run keeps what it finished; running the same command again skips every index already in
the output and appends the rest.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from r3hf_client.errors import R3HFError
from r3hf_client.progress import make_progress

from r3hf_client.options import Baseline, Redistribution, Truncation, choices

from .backend import add_backend_flags, reward_client


def add_score_parser(commands: Any, settings_class: type | None) -> None:
    parser = commands.add_parser(
        "score", help="Score a JSONL file of items into a JSONL file of results (resumable).",
        description=__doc__.split("\n", 1)[1].strip(),
    )
    parser.add_argument("input", type=Path, help="JSONL file: one item per line.")
    parser.add_argument("output", type=Path, help="JSONL file of results; appended to, indices already there skipped.")
    parser.add_argument("--scores-only", action="store_true", help="Call /score: sequence scores, no token rewards.")
    parser.add_argument(
        "--redistribution", choices=choices(Redistribution), default=None, help="Credit strategy (server default)."
    )
    parser.add_argument("--beta", type=float, default=None, help="Mix with sparse (server default 1).")
    parser.add_argument("--baseline", choices=choices(Baseline), default=None, help="r3hf's first-token baseline.")
    parser.add_argument("--return-tokens", action="store_true", help="Also write tokens and offsets.")
    parser.add_argument("--truncation", choices=choices(Truncation), default=None, help="Over-length handling.")
    parser.add_argument("--chunk-size", type=int, default=256, help="Items per request, and per flush of the output.")
    parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
    add_backend_flags(parser, settings_class)


def score_file(args: dict[str, Any], settings_class: type | None, err: TextIO | None = None) -> int:
    err = err or sys.stderr
    source, target, chunk_size = args.pop("input"), args.pop("output"), args.pop("chunk_size")
    if chunk_size < 1:
        raise SystemExit("r3hf score: --chunk-size must be at least 1")
    items = list(read_items(source))
    done = completed_indices(target)
    todo = [(index, item) for index, item in enumerate(items) if index not in done]
    progress_wanted, scores_only = not args.pop("no_progress"), args.pop("scores_only")
    options = {key: args.pop(key) for key in ("redistribution", "beta", "baseline", "return_tokens", "truncation")}
    print(f"r3hf score: {len(items)} items, {len(items) - len(todo)} already in {target}, {len(todo)} to score",
          file=err)
    if not todo:
        return 0
    progress = make_progress(progress_wanted, len(items))
    progress.advance(len(items) - len(todo))
    try:
        with reward_client(args, settings_class, chunk_size=chunk_size) as client, target.open("a") as out:
            for start in range(0, len(todo), chunk_size):
                chunk = todo[start : start + chunk_size]
                try:
                    _score_chunk(client, chunk, scores_only, options, out)
                except R3HFError as exc:
                    print(f"\nr3hf score: stopped at the chunk of input indices {chunk[0][0]}..{chunk[-1][0]} "
                          f"(the server's item k is the chunk's k-th item): {exc}\nfinished results are kept in "
                          f"{target}; run the same command again to resume", file=err)
                    return 1
                progress.advance(len(chunk))
    finally:
        progress.close()
    return 0


def _score_chunk(client: Any, chunk: list[tuple[int, dict]], scores_only: bool, options: dict, out: TextIO) -> None:
    indices, items = [index for index, _ in chunk], [item for _, item in chunk]
    if scores_only:
        answer = client.score(items, truncation=options["truncation"])
    else:
        answer = client.token_rewards(items, **options)
    for result in answer.results:
        line = result.model_dump(exclude_none=True)
        line["index"] = indices[result.index]
        out.write(json.dumps(line) + "\n")
    out.flush()


def read_items(path: Path) -> Iterator[dict]:
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise SystemExit(f"r3hf score: {path}:{number} is not JSON ({exc})") from exc
            if not isinstance(item, dict):
                raise SystemExit(f"r3hf score: {path}:{number} must be a JSON object (an item)")
            yield item


def completed_indices(path: Path) -> set[int]:
    """Indices already written. A last line cut short by an interrupted run is removed so the file stays valid."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        path.write_bytes(complete)
    indices = set()
    for number, line in enumerate(complete.decode().splitlines(), start=1):
        if line.strip():
            try:
                indices.add(int(json.loads(line)["index"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise SystemExit(f"r3hf score: {path}:{number} is not a result line written by r3hf score ({exc})")
    return indices
