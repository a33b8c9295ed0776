"""A small synchronous client for the R3HF reward server (httpx + pydantic only)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from .errors import error_from_response
from .wire import InfoResponse, ScoreResponse, TokenRewardsResponse

ItemLike = Mapping[str, Any]


class RewardClient:
    """Calls ``/token_rewards``, ``/score``, ``/info`` and ``/ready`` on one server.

    ``transport`` lets tests inject an in-process ASGI or mock transport.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        timeout: float = 180.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=dict(headers or {}), transport=transport)

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def token_rewards(self, items: Iterable[ItemLike], **options: Any) -> TokenRewardsResponse:
        """Per-token rewards; ``options`` are the request fields (redistribution, beta, baseline, ...)."""
        body = {"items": [dict(item) for item in items], **options}
        return TokenRewardsResponse.model_validate(self._post("/token_rewards", body))

    def score(self, items: Iterable[ItemLike], *, truncation: str = "error") -> ScoreResponse:
        body = {"items": [dict(item) for item in items], "truncation": truncation}
        return ScoreResponse.model_validate(self._post("/score", body))

    def info(self) -> InfoResponse:
        return InfoResponse.model_validate(self._checked(self._http.get("/info")))

    def ready(self) -> bool:
        try:
            return self._http.get("/ready").status_code == 200
        except httpx.TransportError:
            return False

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._checked(self._http.post(path, json=body))

    @staticmethod
    def _checked(response: httpx.Response) -> Any:
        if response.is_success:
            return response.json()
        try:
            body = response.json()
        except ValueError:
            body = None
        raise error_from_response(response.status_code, body)
