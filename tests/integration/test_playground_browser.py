"""The playground in real headless Chromium against the demo model: it loads, and a request renders one coloured
element per response token carrying exactly the values the API returned.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package (scripts/setup_browser.sh, which
scripts/test.sh runs). Without them the test is skipped, unless R3HF_REQUIRE_BROWSER=1 (set by scripts/test.sh) makes
that a failure. Set R3HF_PLAYGROUND_SCREENSHOT=docs/playground.png to refresh the screenshot in the docs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from r3hf_server.settings import DEMO_MODEL_DIR

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


@pytest.fixture(scope="module")
def demo(serve):
    return serve(DEMO_MODEL_DIR)


def api_result(base: str, item: dict, **options) -> dict:
    body = {"items": [item], "return_tokens": True, **options}
    reply = httpx.post(f"{base}/token_rewards", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()["results"][0]


def rendered_tokens(driver) -> list[dict]:  # type: ignore[no-untyped-def]
    return driver.execute_script(
        "return [...document.querySelectorAll('#heatmap .tok')].map(e => ({reward: e.dataset.reward, "
        "text: e.textContent, background: e.style.backgroundColor}))"
    )


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


def test_the_page_renders_one_coloured_token_per_reward_with_the_api_values(browser, demo):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.get(f"{demo}/playground")
    assert "R3HF" in browser.title
    fill_text_item(browser, ITEM)
    browser.find_element(By.ID, "score-button").click()
    expected = api_result(demo, ITEM)
    tokens = wait_for_rewards(browser, expected["token_rewards"])
    assert len(tokens) == expected["num_response_tokens"]
    assert "".join(t["text"] for t in tokens) == ITEM["response"]
    assert_coloured_by_sign(tokens)
    assert browser.find_element(By.ID, "score").text == f"{expected['score']:+.4f}"
    points = browser.find_elements(By.CSS_SELECTOR, "#curve circle.rm")
    assert len(points) == len(tokens) + 1, "the curve has the prompt score plus one point per token"
    strongest = max(range(len(tokens)), key=lambda i: abs(expected["token_rewards"][i]))
    ActionChains(browser).move_to_element(browser.find_elements(By.CSS_SELECTOR, "#heatmap .tok")[strongest]).perform()
    assert f"{expected['token_rewards'][strongest]:+.4f}" in browser.find_element(By.ID, "hover-info").text
    screenshot = os.environ.get("R3HF_PLAYGROUND_SCREENSHOT")
    if screenshot:
        browser.save_screenshot(screenshot)


def test_switching_the_strategy_rerenders_with_that_strategys_values(browser, demo):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{demo}/playground")
    fill_text_item(browser, ITEM)
    browser.find_element(By.ID, "score-button").click()
    wait_for_rewards(browser, api_result(demo, ITEM)["token_rewards"])
    Select(browser.find_element(By.ID, "strategy")).select_by_value("attention")
    attention = api_result(demo, ITEM, redistribution="attention")["token_rewards"]
    assert_coloured_by_sign(wait_for_rewards(browser, attention))


def test_chat_messages_are_scored_through_the_template(browser, demo):
    from selenium.webdriver.common.by import By

    browser.get(f"{demo}/playground")
    browser.find_element(By.ID, "mode-chat").click()
    browser.find_element(By.ID, "score-button").click()
    messages = browser.execute_script("return state.messages")
    expected = api_result(demo, {"messages": messages})
    tokens = wait_for_rewards(browser, expected["token_rewards"])
    assert "".join(t["text"] for t in tokens) == messages[-1]["content"]


def test_the_page_reports_no_browser_errors(browser, demo):
    browser.get(f"{demo}/playground")
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == [], severe
