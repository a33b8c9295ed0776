"""Headless Chromium for the playground tests, and helpers to read what the page rendered.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package (scripts/setup_browser.sh, which
scripts/test.sh runs). Without them the tests are skipped, unless R3HF_REQUIRE_BROWSER=1 (set by scripts/test.sh)
makes that a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Keep Chromium off the network: no first-run, sync, component updates, QUIC or background fetches.
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    "--window-size=1100,1250",
]
ITEM = {"prompt": "How was your day?", "response": " It was wonderful, although the traffic was awful."}
WAIT_S = 30


def _browser_or_skip():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    try:
        from selenium import webdriver  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        reason = f"playground browser test needs {', '.join(missing)}: run bash scripts/setup_browser.sh"
        if os.environ.get("R3HF_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def api_result(base: str, item: dict, headers: dict | None = None, **options) -> dict:
    body = {"items": [item], "return_tokens": True, **options}
    reply = httpx.post(f"{base}/token_rewards", json=body, headers=headers, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()["results"][0]


def rendered_tokens(driver) -> list[dict]:  # type: ignore[no-untyped-def]
    return driver.execute_script(
        "return [...document.querySelectorAll('#heatmap .tok')].map(e => ({reward: e.dataset.reward, "
        "text: e.textContent, background: e.style.backgroundColor}))"
    )


def wait_until_scored(driver) -> None:  # type: ignore[no-untyped-def]
    """Until the page's own requests are answered (its score button is enabled again). Ask the API for the expected
    values only then: a request batched with the page's gets fp32 results that differ in the last bit (up to 5e-7
    measured on the demo model, 78 of 80 concurrent pairs), and the page's values are compared exactly."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT_S).until(lambda d: d.find_element(By.ID, "score-button").is_enabled())


def wait_for_rewards(driver, expected: list[float]) -> list[dict]:  # type: ignore[no-untyped-def]
    from selenium.webdriver.support.ui import WebDriverWait

    def matches(d):  # type: ignore[no-untyped-def]
        tokens = rendered_tokens(d)
        return tokens if [float(t["reward"]) for t in tokens] == expected else False

    return WebDriverWait(driver, WAIT_S).until(matches)


def fill_text_item(driver, item: dict) -> None:  # type: ignore[no-untyped-def]
    driver.execute_script(
        "document.getElementById('prompt').value = arguments[0];"
        "document.getElementById('response').value = arguments[1];", item["prompt"], item["response"],
    )


def assert_coloured_by_sign(tokens: list[dict]) -> None:
    for token in tokens:
        red, _, blue = (int(c) for c in token["background"].removeprefix("rgb(").removesuffix(")").split(","))
        reward = float(token["reward"])
        assert (blue >= red) if reward >= 0 else (red >= blue), token


