"""The request log in a real browser: an app's call that the Hub refused is found on
Requests by its status, opened, and shows why; both pages pass axe-core and fit a phone."""

import openai
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import PHONE, browser, click_and_load, new_driver, screenshot, wait_for_path  # noqa: F401
from test_journey import check_page
from test_usage import headless_hub, sign_in  # noqa: F401  (a fixture)


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_a_failed_call_is_found_opened_and_explained(headless_hub, size):  # noqa: F811
    hub = headless_hub
    browser, profile = new_driver(size=PHONE) if size == "phone" else new_driver()
    try:
        sign_in(browser, hub)
        key = create_app_in_browser_anywhere(browser, hub, f"Log check {size}")
        client = openai.OpenAI(base_url=hub.url("/openai/v1"), api_key=key, max_retries=0)
        assert client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
        ).choices
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="gpt-9-ultra", messages=[{"role": "user", "content": "Hi"}])

        browser.get(hub.url("/requests"))
        wait_for_path(browser, "/requests")
        assert browser.find_element(By.ID, "total-requests").text == "2"
        check_page(browser, size, "requests")
        Select(browser.find_element(By.NAME, "status")).select_by_value("model_not_available")
        click_and_load(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Apply']"))
        assert "status=model_not_available" in browser.current_url
        assert browser.find_element(By.ID, "total-requests").text == "1"
        rows = browser.find_elements(By.CSS_SELECTOR, "table.requests tbody tr")
        assert len(rows) == 1 and "gpt-9-ultra" in rows[0].text and "404" in rows[0].text
        export = browser.find_element(By.XPATH, "//a[normalize-space()='Export CSV']")
        assert "status=model_not_available" in export.get_attribute("href")
        click_and_load(browser, rows[0].find_element(By.CSS_SELECTOR, "a[href^='/requests/']"))
        assert browser.find_element(By.ID, "request-error").text == "model_not_available"
        assert "gpt-9-ultra" in browser.find_element(By.ID, "request-body").text
        check_page(browser, size, "request")
        screenshot(browser, f"request-{size}")
    finally:
        browser.quit()
        profile.cleanup()


def create_app_in_browser_anywhere(browser, hub, name):
    """Creates an app from its page directly (the phone menu is folded away)."""
    browser.get(hub.url("/apps"))
    wait_for_path(browser, "/apps")
    browser.find_element(By.NAME, "name").send_keys(name)
    click_and_load(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Create app']"))
    return browser.find_element(By.ID, "app-key").text.strip()


def test_settings_choose_what_requests_keep(headless_hub, browser):  # noqa: F811
    hub = headless_hub
    sign_in(browser, hub)
    browser.get(hub.url("/settings"))
    form = browser.find_element(By.CSS_SELECTOR, "form[action='/settings/keep']")
    assert Select(form.find_element(By.NAME, "keep_bodies_days")).first_selected_option.text == "7 days"
    days = form.find_element(By.NAME, "keep_requests_days")
    days.send_keys("a week")
    click_and_load(browser, form.find_element(By.XPATH, ".//button[normalize-space()='Save']"))
    error = browser.find_element(By.ID, "keep-keep_requests_days-error")
    assert "whole number" in error.text
    assert browser.find_element(By.NAME, "keep_requests_days").get_attribute("value") == "a week"
    form = browser.find_element(By.CSS_SELECTOR, "form[action='/settings/keep']")
    Select(form.find_element(By.NAME, "keep_bodies_days")).select_by_value("0")
    days = form.find_element(By.NAME, "keep_requests_days")
    days.clear()
    days.send_keys("30")
    click_and_load(browser, form.find_element(By.XPATH, ".//button[normalize-space()='Save']"))
    assert "Saved how long requests are kept" in browser.find_element(By.CSS_SELECTOR, ".notice").text
    form = browser.find_element(By.CSS_SELECTOR, "form[action='/settings/keep']")
    assert Select(form.find_element(By.NAME, "keep_bodies_days")).first_selected_option.get_attribute("value") == "0"
    assert form.find_element(By.NAME, "keep_requests_days").get_attribute("value") == "30"


def test_a_streamed_call_reads_as_its_answer_and_opens_in_the_playground(headless_hub, browser):  # noqa: F811
    hub = headless_hub
    sign_in(browser, hub)
    key = create_app_in_browser_anywhere(browser, hub, "Replay check")
    client = openai.OpenAI(base_url=hub.url("/openai/v1"), api_key=key, max_retries=0)
    prompt = "Write two lines about tide pools"
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}],
        stream=True,
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed

    browser.get(hub.url("/requests"))
    wait_for_path(browser, "/requests")
    row = browser.find_elements(By.CSS_SELECTOR, "table.requests tbody tr")[0]
    click_and_load(browser, row.find_element(By.CSS_SELECTOR, "a[href^='/requests/']"))
    # The answer as the app saw it, put together; the raw events are folded away.
    assert browser.find_element(By.ID, "assembled-answer").text == streamed.strip()
    raw = browser.find_element(By.ID, "raw-events")
    assert raw.get_attribute("open") is None
    assert not browser.find_element(By.ID, "response-body").is_displayed()
    assert browser.find_element(By.ID, "provider-request-id").text.startswith("req_")

    click_and_load(browser, browser.find_element(By.ID, "open-in-playground"))
    assert "/playground?request=" in browser.current_url
    form = browser.find_element(By.ID, "playground-form")
    assert form.find_element(By.NAME, "prompt").get_attribute("value") == prompt
    assert form.find_element(By.NAME, "system").get_attribute("value") == "Be brief."
    target = Select(form.find_element(By.NAME, "target")).first_selected_option
    assert target.get_attribute("value") == "managed-openai|gpt-4o-mini"
    form.find_element(By.XPATH, ".//button[normalize-space()='Send']").click()
    answer = browser.find_element(By.ID, "answer-text")
    WebDriverWait(browser, 20).until(lambda _: answer.text.strip() and answer.get_attribute("aria-busy") is None)

    browser.get(hub.url("/requests?app=playground"))
    assert browser.find_element(By.ID, "total-requests").text == "1"
