"""Regenerate the documents derived from code: the settings table in docs/settings.md and docs/openapi.json.

    .venv/bin/python scripts/docs_sync.py          # rewrite them
    .venv/bin/python scripts/docs_sync.py --check  # exit 1 if they are stale (the tests do this)
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_DOC = ROOT / "docs" / "settings.md"
OPENAPI = ROOT / "docs" / "openapi.json"
BEGIN, END = "<!-- settings-table:begin -->", "<!-- settings-table:end -->"


def settings_table() -> str:
    from r3hf_server.settings import DEMO_MODEL_DIR, Settings

    rows = ["| flag | environment variable | default | description |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = "embedded demo model" if field.default == str(DEMO_MODEL_DIR) else field.default
        choices = typing.get_args(field.annotation) if typing.get_origin(field.annotation) is typing.Literal else ()
        description = field.description + (f" One of: {', '.join(choices)}." if choices else "")
        rows.append(f"| `--{name.replace('_', '-')}` | `R3HF_{name.upper()}` | `{default}` | {description} |")
    return "\n".join(rows)


def openapi_document() -> str:
    from r3hf_server.api.app import create_app
    from r3hf_server.runner.fake import FakeRunner
    from r3hf_server.settings import Settings

    return json.dumps(create_app(Settings(runner="fake"), FakeRunner()).openapi(), indent=2, sort_keys=True) + "\n"


def with_settings_table(document: str) -> str:
    head, rest = document.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{settings_table()}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the documents are current")
    args = parser.parse_args()
    wanted = {SETTINGS_DOC: with_settings_table(SETTINGS_DOC.read_text()), OPENAPI: openapi_document()}
    stale = [path for path, text in wanted.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run scripts/docs_sync.py)", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
