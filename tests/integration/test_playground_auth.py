"""The playground on a server with API keys: the page (listed public) loads, scoring without a key shows the 401,
and the key typed into the page's field is sent as a Bearer header."""

from __future__ import annotations

import pytest

from playground_browser import (  # noqa: F401  (browser is a fixture)
    ITEM, api_result, browser, fill_text_item, wait_for_rewards, wait_until_scored,
)
from r3hf_server.settings import DEMO_MODEL_DIR

KEY = "playground-test-key"


@pytest.fixture(scope="module")
def keyed_demo(serve):
    return serve(DEMO_MODEL_DIR, api_keys=KEY, public_paths="/health,/ready,/metrics,/playground*")


def test_the_page_sends_the_typed_key_and_shows_the_401_without_it(browser, keyed_demo):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{keyed_demo}/playground")
    fill_text_item(browser, ITEM)
    browser.find_element(By.ID, "score-button").click()
    error = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "error").is_displayed()
                                             and d.find_element(By.ID, "error"))
    assert error.text.startswith("401 unauthorized")
    browser.find_element(By.ID, "api-key").send_keys(KEY)
    browser.find_element(By.ID, "score-button").click()
    wait_until_scored(browser)
    expected = api_result(keyed_demo, ITEM, headers={"authorization": f"Bearer {KEY}"})
    tokens = wait_for_rewards(browser, expected["token_rewards"])
    assert len(tokens) == expected["num_response_tokens"]
    assert not browser.find_element(By.ID, "error").is_displayed()
