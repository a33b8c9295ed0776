"""Where ``explain`` and ``score`` send their items: a running server (``--url``) or a model loaded in-process."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from r3hf_client import RewardClient

from .settings_flags import add_settings_flags

IN_PROCESS_URL = "http://in-process"
# Settings that mean nothing without a listening socket are not offered as flags of these commands.
_SERVING_ONLY = frozenset({"host", "port"})


def add_backend_flags(parser: argparse.ArgumentParser, settings_class: type | None) -> None:
    server = parser.add_argument_group("server (reached with r3hf_client)")
    server.add_argument("--url", help="Base URL of a running r3hf server; without it the model is loaded in-process.")
    server.add_argument(
        "--api-key", dest="client_api_key", metavar="KEY", help="Bearer key for a server that requires one."
    )
    if settings_class is not None:  # the server extra is installed: an in-process model is possible
        local = parser.add_argument_group("in-process model (when --url is not given); same as r3hf serve")
        add_settings_flags(local, settings_class, include=lambda name: name not in _SERVING_ONLY and "key" not in name)


@contextmanager
def reward_client(args: dict[str, Any], settings_class: type | None, **client_options: Any) -> Iterator[RewardClient]:
    """A client for ``args["url"]``, or for an app built from the remaining settings flags and served in-process."""
    url, api_key = args.pop("url", None), args.pop("client_api_key", None)
    if url:
        with RewardClient(url, api_key=api_key, **client_options) as client:
            yield client
        return
    if settings_class is None:
        raise SystemExit("r3hf: give --url, or install the server extra (pip install 'r3hf[server]') for in-process")
    from ..api.app import create_app
    from .inprocess import InProcessTransport

    settings = settings_class(**{name: value for name, value in args.items() if name in settings_class.model_fields})
    transport = InProcessTransport(create_app(settings))
    with RewardClient(IN_PROCESS_URL, transport=transport, **client_options) as client:  # closing it closes the app
        yield client
