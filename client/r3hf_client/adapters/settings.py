"""Where module-level adapter functions find the server: environment variables, read when first called.

Trainers load reward functions by file path or module name and call them in worker processes, so there is no
constructor to pass a URL to. One client per process and configuration is kept (process pools fork).

====================== ======================================================= ============
variable               meaning                                                 default
====================== ======================================================= ============
R3HF_CLIENT_URL        base URL, or several separated by commas (replicas)     http://127.0.0.1:8000
R3HF_CLIENT_API_KEY    sent as ``Authorization: Bearer <key>``                 none
R3HF_CLIENT_FINGERPRINT  the model fingerprint every answer must carry         pin the first
R3HF_CLIENT_TIMEOUT    seconds per attempt                                     adapter's own
R3HF_CLIENT_DEADLINE   seconds per call, retries included                      adapter's own
====================== ======================================================= ============
"""

# No "from __future__ import annotations": dataclasses resolve string annotations through sys.modules, where a
# module loaded by file path (as trainers load adapters) is absent.
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from r3hf_client.client import RewardClient


@dataclass(frozen=True)
class ClientSettings:
    urls: tuple[str, ...] = ("http://127.0.0.1:8000",)
    api_key: str | None = None
    fingerprint: str | None = None
    timeout: float = 180.0
    deadline: float | None = 600.0

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, timeout: float = 180.0, deadline: float | None = 600.0
    ) -> "ClientSettings":
        """Settings from ``R3HF_CLIENT_*``; ``timeout``/``deadline`` are the calling adapter's defaults."""
        env = os.environ if environ is None else environ
        urls = tuple(u.strip() for u in env.get("R3HF_CLIENT_URL", cls.urls[0]).split(",") if u.strip())
        return cls(
            urls=urls,
            api_key=env.get("R3HF_CLIENT_API_KEY") or None,
            fingerprint=env.get("R3HF_CLIENT_FINGERPRINT") or None,
            timeout=float(env.get("R3HF_CLIENT_TIMEOUT", timeout)),
            deadline=float(env["R3HF_CLIENT_DEADLINE"]) if "R3HF_CLIENT_DEADLINE" in env else deadline,
        )

    def client(self) -> RewardClient:
        return RewardClient(
            list(self.urls), api_key=self.api_key, fingerprint=self.fingerprint, timeout=self.timeout,
            deadline=self.deadline,
        )


_clients: dict[tuple[int, ClientSettings], RewardClient] = {}
_lock = threading.Lock()


def shared_client(settings: ClientSettings) -> RewardClient:
    """One client per process and settings, so connections are reused across calls."""
    key = (os.getpid(), settings)
    with _lock:
        if key not in _clients:
            _clients[key] = settings.client()
        return _clients[key]
