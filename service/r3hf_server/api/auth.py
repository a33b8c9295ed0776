"""Optional API keys: fail-closed on every path except an explicit public list.

A request carries its key as ``Authorization: Bearer <key>`` (the client's ``api_key=``) or as HTTP Basic with the
key as the password and any user name. Basic is the way in for callers that cannot set a header:

- OpenRLHF (and any trainer that posts with requests, httpx or aiohttp) turns credentials in the URL into a Basic
  header: ``--remote_rm_url http://r3hf:<key>@host:8000/get_reward``. The key never travels in the request line, so
  it stays out of access logs (it does stay in the trainer's own command line).

The 401's challenge names Bearer only: a Basic challenge would make browsers pop up a login dialog over pages (the
playground) that send the key themselves. Clients that use Basic send it without being challenged.

Keys are compared in constant time with ``hmac.compare_digest`` against every configured key (no early exit), so
timing tells nothing about how much of a guess was right. Keys are never logged: settings hold them as SecretStr.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from r3hf_client.errors import ErrorType

from ..settings import Settings
from .errors import error_response

log = logging.getLogger(__name__)

CHALLENGE = 'Bearer realm="r3hf"'


class ApiKeysError(Exception):
    """Keys were asked for but cannot be used; the server refuses to start (one line, exit 2) rather than open up."""


def load_api_keys(settings: Settings) -> list[bytes]:
    """Keys from --api-keys (comma-separated) and --api-keys-file (one per line, # comments); none asked = no auth.

    Fails closed: keys asked for (the flag, R3HF_API_KEYS or the file set) but none found, a file that cannot be
    read, or a key that is not printable ASCII (a header carries bytes: a non-ASCII key would match as Basic but
    never as Bearer) raise ApiKeysError.
    """
    keys = settings.api_keys.get_secret_value().split(",") if settings.api_keys is not None else []
    if settings.api_keys_file:
        keys += _keys_in_file(Path(settings.api_keys_file))
    keys = [key.strip() for key in keys if key.strip()]
    asked = settings.api_keys is not None or bool(settings.api_keys_file)
    if asked and not keys:
        raise ApiKeysError(
            "API keys were asked for (--api-keys / R3HF_API_KEYS / --api-keys-file) but none was found; refusing to "
            "start an open server: give at least one key, or unset them to serve without keys"
        )
    for number, key in enumerate(keys, 1):
        if not (key.isascii() and key.isprintable()) or " " in key:
            raise ApiKeysError(f"API key #{number} has a character that is not printable ASCII (or a space): keys "
                               "travel in HTTP headers, so use letters, digits and punctuation")
    return [key.encode("ascii") for key in keys]


def _keys_in_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ApiKeysError(f"cannot read --api-keys-file {path}: {reason}") from None
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


class PublicPaths:
    def __init__(self, spec: str) -> None:
        paths = [p.strip() for p in spec.split(",") if p.strip()]
        self.exact = frozenset(p for p in paths if not p.endswith("*"))
        self.prefixes = tuple(p[:-1] for p in paths if p.endswith("*"))

    def __contains__(self, path: str) -> bool:
        return path in self.exact or path.startswith(self.prefixes)


def presented_key(authorization: str) -> bytes | None:
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip().encode() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2].encode() or None
    return None


def key_matches(presented: bytes, keys: list[bytes]) -> bool:
    matched = False
    for key in keys:  # every key is compared, so the time taken does not depend on which one matched
        matched |= hmac.compare_digest(presented, key)
    return matched


class ApiKeyAuth:
    """Pure ASGI, outside body handling: an unauthenticated client cannot make the server read its body."""

    def __init__(self, app: ASGIApp, keys: list[bytes], public_paths: PublicPaths) -> None:
        self.app = app
        self.keys = keys
        self.public_paths = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        response = error_response(
            ErrorType.UNAUTHORIZED,
            "this server needs an API key: send 'Authorization: Bearer <key>' (or HTTP Basic with the key as the "
            "password)",
            headers={"www-authenticate": CHALLENGE},
        )
        await response(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), None)
        if header is None:
            return False
        presented = presented_key(header.decode("latin-1"))
        return presented is not None and key_matches(presented, self.keys)
