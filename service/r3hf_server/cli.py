"""``r3hf serve``: every Settings field is a flag (and an R3HF_* environment variable)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .commands.settings_flags import add_settings_flags

_MISSING_EXTRA = "the server needs its extra dependencies: pip install 'r3hf[server]' (see the README for CUDA torch)"


def _settings_class():  # type: ignore[no-untyped-def]
    try:
        from .settings import Settings
    except ImportError as exc:
        raise SystemExit(f"r3hf: {_MISSING_EXTRA} ({exc})") from exc
    return Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r3hf", description="R3HF token-reward server.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="Load a reward model and serve it over HTTP.")
    add_settings_flags(serve, _settings_class())
    from .commands.explain import add_explain_parser
    from .commands.score_file import add_score_parser

    add_explain_parser(commands, _optional_settings_class())
    add_score_parser(commands, _optional_settings_class())
    return parser


def _optional_settings_class():  # type: ignore[no-untyped-def]
    """Settings when the server extra is installed; None lets explain/score still run against a --url."""
    try:
        from .settings import Settings
    except ImportError:
        return None
    return Settings


def serve(given: dict) -> int:
    from pydantic import ValidationError

    try:
        settings = _settings_class()(**given)
    except ValidationError as exc:
        from .startup import settings_failure_line

        print(settings_failure_line(exc), file=sys.stderr)
        return 2
    try:
        from .api.app import create_app
        from .api.auth import ApiKeysError, load_api_keys
        from .api.serving import serve_app
        from .engine import build_runner
    except ImportError as exc:
        raise SystemExit(f"r3hf: {_MISSING_EXTRA} ({exc})") from exc
    try:
        load_api_keys(settings)  # keys asked for must be usable: checked before the model loads (fail closed)
    except ApiKeysError as exc:
        print(f"r3hf: refusing to start: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("r3hf_server").info("settings: %s", settings.model_dump_json())  # API keys print as ******
    from .startup import report_failure

    try:
        runner = build_runner(settings)  # load before binding, so a refused model exits with its reason
    except Exception as exc:  # one line with the cause and what to do; the traceback only at --log-level debug
        return report_failure(settings, exc)
    app = create_app(settings, runner)
    serve_app(app, settings.host, settings.port, settings.log_level, settings.drain_timeout_s)
    if not app.state.engine:  # start-up failed (uvicorn logged why, e.g. the warm-up naming a setting)
        return 3
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    command = args.pop("command")
    if command == "serve":
        return serve(args)
    if command in ("explain", "score"):
        return _run_tool(command, args)
    return 1


def _run_tool(command: str, args: dict) -> int:
    from .commands.explain import explain
    from .commands.score_file import score_file
    from .errors import ModelRefusedError

    try:
        return (explain if command == "explain" else score_file)(args, _optional_settings_class())
    except ModelRefusedError as exc:
        print(f"r3hf: refusing to load the model: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
