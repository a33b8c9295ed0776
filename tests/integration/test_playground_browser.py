"""The playground in real headless Chromium against the demo model: it loads, and a request renders one coloured
element per response token carrying exactly the values the API returned.

Set R3HF_PLAYGROUND_SCREENSHOT=docs/playground.png to refresh the screenshot in the docs.
"""

from __future__ import annotations

import os

import pytest

from playground_browser import (  # noqa: F401  (browser is a fixture)
    ITEM, api_result, assert_coloured_by_sign, browser, fill_text_item, wait_for_rewards, wait_until_scored,
)
from r3hf_server.settings import DEMO_MODEL_DIR


@pytest.fixture(scope="module")
def demo(serve):
    return serve(DEMO_MODEL_DIR)


def test_the_page_renders_one_coloured_token_per_reward_with_the_api_values(browser, demo):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.get(f"{demo}/playground")
    assert "R3HF" in browser.title
    fill_text_item(browser, ITEM)
    browser.find_element(By.ID, "score-button").click()
    wait_until_scored(browser)
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
    wait_until_scored(browser)
    wait_for_rewards(browser, api_result(demo, ITEM)["token_rewards"])
    Select(browser.find_element(By.ID, "strategy")).select_by_value("attention")
    wait_until_scored(browser)
    attention = api_result(demo, ITEM, redistribution="attention")["token_rewards"]
    assert_coloured_by_sign(wait_for_rewards(browser, attention))


def test_chat_messages_are_scored_through_the_template(browser, demo):
    from selenium.webdriver.common.by import By

    browser.get(f"{demo}/playground")
    browser.find_element(By.ID, "mode-chat").click()
    browser.find_element(By.ID, "score-button").click()
    messages = browser.execute_script("return state.messages")
    wait_until_scored(browser)
    expected = api_result(demo, {"messages": messages})
    tokens = wait_for_rewards(browser, expected["token_rewards"])
    assert "".join(t["text"] for t in tokens) == messages[-1]["content"]


def test_the_page_reports_no_browser_errors(browser, demo):
    browser.get(f"{demo}/playground")
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == [], severe
