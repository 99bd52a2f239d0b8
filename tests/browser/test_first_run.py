"""A person's first visit: choose a passphrase, reach Settings, lock, and unlock again."""

import time

from selenium.webdriver.common.by import By

from conftest import PASSPHRASE, click_and_load, screenshot, wait_for_path


def submit(driver, fields, button_text):
    for name, value in fields.items():
        box = driver.find_element(By.NAME, name)
        box.clear()
        box.send_keys(value)
    click_and_load(driver, driver.find_element(By.XPATH, f"//button[normalize-space()='{button_text}']"))


def test_setup_settings_lock_unlock(hub, browser):
    browser.get(hub.url("/"))
    wait_for_path(browser, "/setup")
    assert "cannot be recovered" in browser.page_source
    screenshot(browser, "setup")

    # Two different passphrases are refused and nothing is created.
    submit(browser, {"passphrase": PASSPHRASE, "confirm": PASSPHRASE + "x"}, "Create my Hub")
    assert "differ" in browser.find_element(By.CSS_SELECTOR, ".alert").text

    submit(browser, {"passphrase": PASSPHRASE, "confirm": PASSPHRASE}, "Create my Hub")
    wait_for_path(browser, "/welcome")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Your Hub is ready"
    click_and_load(browser, browser.find_element(By.LINK_TEXT, "Go to Connectors"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Connectors"
    screenshot(browser, "connectors")
    click_and_load(browser, browser.find_element(By.XPATH, "//nav//a[normalize-space()='Settings']"))
    wait_for_path(browser, "/settings")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Settings"
    assert browser.find_element(By.CSS_SELECTOR, "a[aria-current=page]").text == "Settings"
    screenshot(browser, "settings")

    click_and_load(browser, browser.find_element(By.CSS_SELECTOR, ".sidebar button"))
    wait_for_path(browser, "/unlock")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Unlock your Hub"

    # A locked Hub sends the browser back to unlock.
    browser.get(hub.url("/settings"))
    wait_for_path(browser, "/unlock")

    submit(browser, {"passphrase": "not my passphrase"}, "Unlock")
    assert "not correct" in browser.find_element(By.CSS_SELECTOR, ".alert").text
    time.sleep(1.1)  # the first wrong passphrase makes the next attempt wait a second
    submit(browser, {"passphrase": PASSPHRASE}, "Unlock")
    wait_for_path(browser, "/connectors")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Connectors"

    log = "".join(hub.log)
    assert PASSPHRASE not in log and "not my passphrase" not in log
