"""The Playground in a real browser: the answer streams into the page as it is generated."""

import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import Hub, PASSPHRASE, click_and_load, screenshot, wait_for_path


@pytest.fixture
def headless_hub():
    h = Hub(env={"WORKSHOP_HUB_PASSPHRASE": PASSPHRASE})
    yield h
    h.close()


def test_answers_stream_into_the_page(headless_hub, browser):
    hub = headless_hub
    browser.get(hub.url("/unlock"))
    browser.find_element(By.NAME, "passphrase").send_keys(PASSPHRASE)
    browser.find_element(By.XPATH, "//button[normalize-space()='Sign in']").click()
    wait_for_path(browser, "/connectors")
    click_and_load(browser, browser.find_element(By.XPATH, "//nav//a[normalize-space()='Playground']"))
    wait_for_path(browser, "/playground")
    Select(browser.find_element(By.NAME, "target")).select_by_value("managed-openai|gpt-4o-mini")
    browser.find_element(By.NAME, "prompt").send_keys("Write a haiku about local software")
    browser.find_element(By.XPATH, "//button[normalize-space()='Send']").click()
    answer = browser.find_element(By.ID, "answer-text")
    WebDriverWait(browser, 10).until(lambda d: "Write a haiku about local software" in answer.text)
    # The script posted JSON to the streaming API: the page itself did not navigate.
    assert browser.current_url.endswith("/playground")
    time.sleep(0.5)
    assert "offline emulator" in answer.text
    assert not browser.find_element(By.ID, "answer-error").is_displayed()
    screenshot(browser, "playground")
