"""Settings fields as argparse flags: ``--max-batch-tokens`` for ``max_batch_tokens``, its description as the help.

Used by ``r3hf serve`` (cli.py) and by the in-process model of ``r3hf explain`` / ``r3hf score`` (backend.py); it
lives here so that cli.py imports commands/ and nothing in commands/ imports cli.py.
"""

from __future__ import annotations

import argparse
import typing


def add_settings_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, settings_class: type,
    include: typing.Callable[[str], bool] = lambda name: True,
) -> None:
    for name, field in settings_class.model_fields.items():
        if not include(name):
            continue
        flag = "--" + name.replace("_", "-")
        help_text = f"{field.description} [env R3HF_{name.upper()}]"
        kwargs: dict = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
        annotation = field.annotation
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(annotation) is typing.Literal:
            kwargs["choices"] = list(typing.get_args(annotation))
        else:
            base = args[0] if args else annotation
            kwargs["type"] = base if base in (int, float) else str
        parser.add_argument(flag, **kwargs)
