"""GET /playground serves a self-contained page: no redirect, packaged assets, nothing fetched from elsewhere."""

from __future__ import annotations

import re
from importlib import resources

import pytest

# The SVG namespace is an identifier the DOM API needs, never fetched.
ALLOWED_URLS = {"http://www.w3.org/2000/svg"}


def test_the_page_is_served_directly_as_html(fake_client):
    reply = fake_client.get("/playground", follow_redirects=False)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
    assert "connect-src 'self'" in reply.headers["content-security-policy"]
    for asset in ("playground/playground.js", "playground/playground.css"):
        assert f'"{asset}"' in reply.text, "assets are linked relatively so a path prefix in front still works"


@pytest.mark.parametrize("path,media", [("/playground/playground.js", "text/javascript"),
                                        ("/playground/playground.css", "text/css")])
def test_the_assets_are_served_from_the_package(fake_client, path, media):
    reply = fake_client.get(path)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith(media)
    assert reply.text == resources.files("r3hf_server").joinpath(path.lstrip("/")).read_text(encoding="utf-8")


def test_an_unknown_asset_is_a_404_with_the_error_body(fake_client):
    reply = fake_client.get("/playground/secrets.txt")
    assert reply.status_code == 404 and reply.json()["error_type"] == "not_found"


def test_the_page_loads_nothing_from_another_origin():
    folder = resources.files("r3hf_server").joinpath("playground")
    for name in ("index.html", "playground.js", "playground.css"):
        text = folder.joinpath(name).read_text(encoding="utf-8")
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text))
        assert urls <= ALLOWED_URLS, f"{name} refers to {urls - ALLOWED_URLS}"
        assert "@import" not in text
