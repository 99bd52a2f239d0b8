"""Apps in the browser: create an app, copy its key once with the SDK snippets, call the Hub
with it, set a budget and a rate limit, publish it on one of your own keys, delete it."""

import re

import openai
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import Hub, PASSPHRASE, click_and_load, screenshot, wait_for_path

try:  # the SDKs here ship httpx under the name httpx2
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

OPENAI_KEY = "sk-proj-test" + "F" * 40 + "T3BlbkFJ" + "G" * 36 + "Pb4n"
APP_KEY = re.compile(r"whk_[A-Za-z0-9]{8}_[A-Za-z0-9]{32}")


@pytest.fixture
def offline_hub():
    h = Hub("--offline", env={"WORKSHOP_HUB_PASSPHRASE": PASSPHRASE})
    yield h
    h.close()


def api_client(hub):
    c = httpx.Client(base_url=hub.base, timeout=30)
    r = c.post("/api/v1/session", json={"passphrase": PASSPHRASE})
    assert r.status_code == 200, r.text
    return c


def sign_in(driver, hub):
    driver.get(hub.url("/unlock"))
    driver.find_element(By.NAME, "passphrase").send_keys(PASSPHRASE)
    driver.find_element(By.XPATH, "//button[normalize-space()='Sign in']").click()
    wait_for_path(driver, "/connectors")


def show(driver, element):
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)


def text_of(element):
    """All the text, also inside closed <details> (which Selenium's .text leaves out)."""
    return element.get_attribute("textContent")


def hello(key, hub):
    client = openai.OpenAI(api_key=key, base_url=hub.url("/openai/v1"), max_retries=0)
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}])


def test_create_use_limit_publish_delete(offline_hub, browser):
    hub = offline_hub
    api = api_client(hub)
    sign_in(browser, hub)
    browser.find_element(By.LINK_TEXT, "Apps").click()
    wait_for_path(browser, "/apps")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Apps"
    assert "No apps yet" in browser.page_source

    # ---- create: the key is shown once, with snippets that point at this Hub
    browser.find_element(By.NAME, "name").send_keys("Recipe bot")
    click_and_load(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Create app']"))
    panel = browser.find_element(By.ID, "new-key")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Key for Recipe bot"
    assert "shown only this once" in panel.text
    key = browser.find_element(By.ID, "app-key").text.strip()
    assert APP_KEY.fullmatch(key), key
    snippets = {
        s.find_element(By.TAG_NAME, "summary").get_attribute("textContent").strip(): text_of(s.find_element(By.TAG_NAME, "pre"))
        for s in panel.find_elements(By.TAG_NAME, "details")
    }
    for label in ("Python · openai", "Python · anthropic", "Python · google-genai", "curl"):
        assert label in snippets, list(snippets)
    assert any(label.startswith("JavaScript") for label in snippets), list(snippets)
    assert all(key in text for text in snippets.values())
    assert f'base_url="{hub.base}/openai/v1"' in snippets["Python · openai"]
    assert f'base_url="{hub.base}/anthropic"' in snippets["Python · anthropic"]
    assert f'base_url="{hub.base}/gemini"' in snippets["Python · google-genai"]
    assert f"{hub.base}/openai/v1/chat/completions" in snippets["curl"]
    assert f"Authorization: Bearer {key}" in snippets["curl"]
    js = " ".join(text for label, text in snippets.items() if label.startswith("JavaScript"))
    assert f"{hub.base}/openai/v1" in js and f"{hub.base}/anthropic" in js and f"{hub.base}/gemini" in js
    screenshot(browser, "apps-new-key")

    (app,) = api.get("/api/v1/apps").json()["data"]
    assert app["name"] == "Recipe bot" and key.startswith(app["key_prefix"] + "_")
    assert "key" not in app

    # Reloading the page does not show the key again, nor makes a second app.
    browser.refresh()
    assert not browser.find_elements(By.ID, "new-key")
    assert key not in browser.page_source and key.split("_")[2] not in browser.page_source
    assert len(api.get("/api/v1/apps").json()["data"]) == 1
    browser.get(hub.url("/apps"))
    assert not browser.find_elements(By.ID, "new-key")
    assert key not in browser.page_source and key.split("_")[2] not in browser.page_source
    assert app["key_prefix"] in browser.page_source

    # ---- the shown key works with the official SDK
    reply = hello(key, hub)
    assert reply.choices[0].message.content and reply.model == "gpt-4o-mini-2024-07-18"

    # ---- budget and rate limit through the form on the app's own page
    click_and_load(browser, browser.find_element(By.LINK_TEXT, "Recipe bot"))
    section = browser.find_element(By.ID, "settings")
    budget = section.find_element(By.NAME, "budget_dollars")
    budget.clear()
    budget.send_keys("7.50")
    rpm = section.find_element(By.NAME, "rpm_limit")
    rpm.clear()
    rpm.send_keys("30")
    click_and_load(browser, section.find_element(By.XPATH, ".//button[normalize-space()='Save']"))
    wait_for_path(browser, f"/apps/{app['id']}")
    assert "App saved" in browser.find_element(By.CSS_SELECTOR, ".notice").text
    saved = api.get(f"/api/v1/apps/{app['id']}").json()
    assert saved["monthly_budget_micro_usd"] == 7_500_000 and saved["rpm_limit"] == 30
    browser.refresh()
    section = browser.find_element(By.ID, "settings")
    assert section.find_element(By.NAME, "budget_dollars").get_attribute("value") == "7.50"
    assert section.find_element(By.NAME, "rpm_limit").get_attribute("value") == "30"
    assert hello(key, hub).choices  # the limits leave room for this call

    # ---- published on one of your own keys: the page warns that visitors spend on it
    conn = api.post(
        "/api/v1/connections", json={"provider": "openai", "name": "Work account", "api_key": OPENAI_KEY}
    ).json()
    browser.get(hub.url(f"/apps/{app['id']}"))
    section = browser.find_element(By.TAG_NAME, "main")
    assert "Published with your own key" not in section.text
    Select(section.find_element(By.NAME, "openai")).select_by_value(conn["id"])
    published = section.find_element(By.NAME, "published")
    assert not published.is_selected()
    published.click()
    click_and_load(browser, section.find_element(By.XPATH, ".//button[normalize-space()='Save']"))
    wait_for_path(browser, f"/apps/{app['id']}")
    section = browser.find_element(By.TAG_NAME, "main")
    warning = section.find_element(By.CSS_SELECTOR, ".note")
    assert "Published with your own key" in warning.text and "your provider account" in warning.text
    assert section.find_element(By.NAME, "published").is_selected()
    assert Select(section.find_element(By.NAME, "openai")).first_selected_option.get_attribute("value") == conn["id"]
    saved = api.get(f"/api/v1/apps/{app['id']}").json()
    assert saved["published"] is True and saved["connections"]["openai"] == conn["id"]
    assert saved["monthly_budget_micro_usd"] == 7_500_000 and saved["rpm_limit"] == 30
    assert OPENAI_KEY not in browser.page_source
    show(browser, warning)
    screenshot(browser, "apps-published-own-key")
    assert hello(key, hub).choices  # now through the own key (offline: the emulator)

    # ---- delete: a page of its own asks first, then the key is refused from then on
    click_and_load(browser, section.find_element(By.LINK_TEXT, "Delete app…"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Delete Recipe bot?"
    assert api.get("/api/v1/apps").json()["data"] != []
    click_and_load(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Delete app']"))
    wait_for_path(browser, "/apps")
    WebDriverWait(browser, 5).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".notice"))
    assert "App “Recipe bot” deleted" in browser.find_element(By.CSS_SELECTOR, ".notice").text
    assert not browser.find_elements(By.ID, f"app-{app['id']}")
    assert api.get("/api/v1/apps").json()["data"] == []
    with pytest.raises(openai.AuthenticationError) as e:
        hello(key, hub)
    assert e.value.status_code == 401 and e.value.code == "invalid_app_key"
    screenshot(browser, "apps-deleted")
    api.close()
