"""A newcomer's whole journey on a fresh Hub, at desktop and phone size: setup, welcome, a
streamed Playground answer with its cost, a first app (reloading does not make a second), a call
with the openai SDK, the call on Usage & Billing, a BYOK key of the wrong format (error beside
the field, name kept), a rejected key shown as Failing, lock and unlock. Every page is checked
with axe-core and, at phone size, for sideways scrolling. A second test does it all without
JavaScript and checks that destructive actions ask first."""

import json
import pathlib
import re
import time

import openai
import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import DESKTOP, PASSPHRASE, PHONE, Hub, click_and_load, new_driver, screenshot, wait_for_path

AXE = pathlib.Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
APP_KEY = re.compile(r"whk_[A-Za-z0-9]{8}_[A-Za-z0-9]{32}")
# In OpenAI's format; the emulator answers keys containing "invalid" with OpenAI's 401.
REJECTED_KEY = "sk-proj-invalid" + "K" * 37 + "T3BlbkFJ" + "L" * 36 + "Zz9q"
PAGES = ["/welcome", "/connectors", "/apps", "/models", "/playground", "/usage", "/settings"]


@pytest.fixture
def hub():
    h = Hub("--offline")
    yield h
    h.close()


def axe_violations(driver):
    """Runs axe-core on the current page; returns the violations as (rule, targets)."""
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document).then(r => done(JSON.stringify(r.violations)), e => done(JSON.stringify([{id: 'axe-error', nodes: [{target: [String(e)]}]}])));"
    )
    return [(v["id"], [n["target"] for n in v["nodes"]]) for v in json.loads(result)]


def check_page(driver, size, name):
    """What every page must be: accessible, and at phone size never wider than the screen."""
    assert axe_violations(driver) == [], f"{name} at {size}"
    width, inner = driver.execute_script(
        "return [document.scrollingElement.scrollWidth, window.innerWidth]"
    )
    assert width <= inner, f"{name} scrolls sideways at {size}: {width} > {inner}"


def in_view(driver, element):
    return driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight;", element
    )


def set_up(driver, hub):
    driver.get(hub.url("/"))
    wait_for_path(driver, "/setup")
    driver.find_element(By.NAME, "passphrase").send_keys(PASSPHRASE)
    driver.find_element(By.NAME, "confirm").send_keys(PASSPHRASE)
    click_and_load(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Create my Hub']"))
    wait_for_path(driver, "/welcome")


def answer_lengths_while_streaming(driver, timeout=30):
    """Samples the answer's length until the cost appears; returns the lengths seen."""
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline:
        seen.append(len(driver.find_element(By.ID, "answer-text").text))
        if driver.find_element(By.ID, "answer-meta").is_displayed():
            return seen
        time.sleep(0.05)
    raise AssertionError(f"no cost shown; lengths {seen[-5:]}")


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_first_run_to_first_app(hub, size):
    driver, profile = new_driver(size)
    tag = "desktop" if size == DESKTOP else "phone"
    try:
        # ---- setup lands on a welcome that says what works and what to do next
        set_up(driver, hub)
        body = driver.find_element(By.TAG_NAME, "main").text
        assert "$5.00 of credits" in body and "Managed OpenAI, Anthropic, Google Gemini, in demo mode" in body, body
        assert driver.find_element(By.LINK_TEXT, "Ask a model in the Playground")
        check_page(driver, tag, "welcome")

        for page in PAGES:
            driver.get(hub.url(page))
            check_page(driver, tag, page)
        if size == PHONE:
            nav = driver.find_element(By.CSS_SELECTOR, ".nav-body")
            assert not nav.is_displayed()
            driver.find_element(By.CSS_SELECTOR, ".nav-toggle-label").click()
            assert driver.find_element(By.LINK_TEXT, "Apps").is_displayed()

        # ---- the Playground streams visibly, then shows tokens, cost and timings
        driver.get(hub.url("/playground"))
        driver.find_element(By.NAME, "prompt").send_keys("Say hello to a newcomer")
        driver.find_element(By.XPATH, "//button[normalize-space()='Send']").click()
        lengths = answer_lengths_while_streaming(driver)
        growing = sorted({n for n in lengths if n > 0})
        assert len(growing) >= 3, f"the answer did not grow while streaming: {lengths}"
        meta = driver.find_element(By.ID, "answer-meta").text
        assert "from credits" in meta and "Time to first token" in meta and "gpt-4o-mini" in meta, meta
        assert driver.find_element(By.ID, "answer-text").get_attribute("aria-live") == "polite"
        assert "YOUR_APP_KEY" in driver.find_element(By.ID, "answer-snippet").get_attribute("textContent")
        screenshot(driver, f"journey-playground-{tag}")
        check_page(driver, tag, "playground after an answer")

        # ---- a first app: the key shows once; reloading neither repeats it nor makes another app
        driver.get(hub.url("/apps"))
        driver.find_element(By.NAME, "name").send_keys("First app")
        click_and_load(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Create app']"))
        key = driver.find_element(By.ID, "app-key").text
        assert APP_KEY.fullmatch(key)
        check_page(driver, tag, "new key")
        driver.refresh()
        assert "shown once" in driver.find_element(By.ID, "key-spent").text
        assert key not in driver.page_source
        driver.get(hub.url("/apps"))
        assert [a.text for a in driver.find_elements(By.CSS_SELECTOR, "table.apps td a")] == ["First app"]
        check_page(driver, tag, "apps list")
        click_and_load(driver, driver.find_element(By.LINK_TEXT, "First app"))
        check_page(driver, tag, "app page")
        click_and_load(driver, driver.find_element(By.LINK_TEXT, "Delete app…"))
        check_page(driver, tag, "delete confirmation")
        click_and_load(driver, driver.find_element(By.LINK_TEXT, "Cancel"))
        # The same name twice is refused, beside the field, with the name kept.
        driver.get(hub.url("/apps"))
        driver.find_element(By.NAME, "name").send_keys("first APP")
        click_and_load(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Create app']"))
        assert "already exists" in driver.find_element(By.ID, "new-app-name-error").text
        assert driver.find_element(By.NAME, "name").get_attribute("value") == "first APP"
        assert len(driver.find_elements(By.CSS_SELECTOR, "table.apps tbody tr")) == 1

        # ---- the app calls the Hub with the openai SDK, and the call shows on Usage & Billing
        client = openai.OpenAI(api_key=key, base_url=hub.url("/openai/v1"), max_retries=0)
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
        assert reply.choices[0].message.content
        driver.get(hub.url("/usage"))
        WebDriverWait(driver, 10).until(
            lambda d: "First app" in d.find_element(By.CSS_SELECTOR, "table.requests").text or d.refresh()
        )

        # ---- a key of the wrong format: the error sits beside the field, in view, name kept
        driver.get(hub.url("/connectors"))
        form = driver.find_element(By.ID, "add-openai")
        form.find_element(By.NAME, "name").send_keys("Work account")
        form.find_element(By.NAME, "api_key").send_keys("not-a-key")
        click_and_load(driver, form.find_element(By.XPATH, ".//button[normalize-space()='Add Connection']"))
        error = driver.find_element(By.ID, "add-openai-api_key-error")
        assert "sk-" in error.text
        assert in_view(driver, error), "the error is off-screen"
        assert driver.find_element(By.ID, "add-openai").find_element(By.NAME, "name").get_attribute("value") == "Work account"
        assert "not-a-key" not in driver.page_source
        check_page(driver, tag, "connectors with an error")

        # ---- a key the provider rejects: the connection says Failing, styled as a failure
        form = driver.find_element(By.ID, "add-openai")
        form.find_element(By.NAME, "api_key").send_keys(REJECTED_KEY)
        click_and_load(driver, form.find_element(By.XPATH, ".//button[normalize-space()='Add Connection']"))
        WebDriverWait(driver, 20, ignored_exceptions=(WebDriverException,)).until(
            lambda d: "check failed" in d.find_element(By.CSS_SELECTOR, "main .alert[role=alert]").text
        )
        badge = driver.find_element(By.XPATH, "//div[contains(@class,'connection')]//span[contains(@class,'badge')]")
        assert badge.text == "Failing: Invalid API key"
        assert "badge-error" in badge.get_attribute("class")
        driver.get(hub.url("/playground"))
        assert "failing" in driver.find_element(By.NAME, "target").get_attribute("textContent")

        # ---- lock, then unlock
        driver.get(hub.url("/settings"))
        click_and_load(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Lock now']"))
        wait_for_path(driver, "/unlock")
        check_page(driver, tag, "unlock")
        driver.find_element(By.NAME, "passphrase").send_keys(PASSPHRASE)
        click_and_load(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Unlock']"))
        wait_for_path(driver, "/connectors")
    finally:
        driver.quit()
        profile.cleanup()


def test_without_javascript_everything_works_and_destruction_asks_first(hub):
    driver, profile = new_driver(PHONE, javascript=False)
    try:
        set_up(driver, hub)
        assert driver.execute_script is not None
        for page in PAGES:
            driver.get(hub.url(page))
            assert driver.find_element(By.TAG_NAME, "h1").text

        # The phone menu opens without a script.
        driver.find_element(By.CSS_SELECTOR, ".nav-toggle-label").click()
        assert driver.find_element(By.LINK_TEXT, "Usage & Billing").is_displayed()

        # The Playground answers in one piece.
        driver.get(hub.url("/playground"))
        driver.find_element(By.NAME, "prompt").send_keys("Hello without scripts")
        click_and_load(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Send']"))
        assert driver.find_element(By.ID, "answer-text").text

        # An app, its key once, then "New key" and "Delete app" each ask on a page of their own.
        driver.get(hub.url("/apps"))
        driver.find_element(By.NAME, "name").send_keys("Quiet app")
        click_and_load(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Create app']"))
        key = driver.find_element(By.ID, "app-key").text
        app_path = driver.current_url.split("?")[0].rsplit("/key", 1)[0]
        driver.get(app_path)
        click_and_load(driver, driver.find_element(By.LINK_TEXT, "New key…"))
        assert "stops working" in driver.find_element(By.TAG_NAME, "main").text
        client = openai.OpenAI(api_key=key, base_url=hub.url("/openai/v1"), max_retries=0)
        assert client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
        click_and_load(driver, driver.find_element(By.LINK_TEXT, "Cancel"))
        click_and_load(driver, driver.find_element(By.LINK_TEXT, "Delete app…"))
        assert driver.find_element(By.TAG_NAME, "h1").text == "Delete Quiet app?"
        driver.get(hub.url("/apps"))
        assert "Quiet app" in driver.find_element(By.CSS_SELECTOR, "table.apps").text
        driver.get(app_path + "/delete")
        click_and_load(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Delete app']"))
        assert "deleted" in driver.find_element(By.CSS_SELECTOR, ".notice").text
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])

        # Turning a managed connector off asks first, too.
        driver.get(hub.url("/connectors"))
        click_and_load(driver, driver.find_element(By.ID, "conn-managed-openai").find_element(By.LINK_TEXT, "Delete Connection"))
        assert "turns it off" in driver.find_element(By.TAG_NAME, "main").text
    finally:
        driver.quit()
        profile.cleanup()
