"""``GET /playground``: a static page that calls ``POST /token_rewards`` and colours every response token.

The page is plain HTML, CSS and JavaScript shipped inside the package: no build step, no CDN, nothing fetched at run
time but this server's own API. It carries no data, so it is safe to serve without an API key; the page itself
sends the key the user types as a Bearer header.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)

_ASSETS = {"playground.js": "text/javascript; charset=utf-8", "playground.css": "text/css; charset=utf-8"}
# The page may talk only to this origin; inline scripts and styles stay off.
_CSP = "default-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'"


def _read(name: str) -> str:
    return resources.files("r3hf_server").joinpath("playground", name).read_text(encoding="utf-8")


@router.get("/playground", response_class=HTMLResponse)
async def playground_page() -> HTMLResponse:
    return HTMLResponse(_read("index.html"), headers={"content-security-policy": _CSP, "cache-control": "no-cache"})


@router.get("/playground/{asset}")
async def playground_asset(asset: str) -> Response:
    media_type = _ASSETS.get(asset)
    if media_type is None:
        raise HTTPException(404, f"the playground has no file {asset!r}; it serves {sorted(_ASSETS)}")
    return Response(_read(asset), media_type=media_type, headers={"cache-control": "no-cache"})
