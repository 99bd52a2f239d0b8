"""Connectors in the browser: add a BYOK connection through the form, verify it, see only the
masked key, refuse a key of the wrong format, delete a managed connection and enable it again."""

import re

import openai
import pytest
from selenium.webdriver.common.by import By

from conftest import Hub, PASSPHRASE, click_and_load, screenshot, wait_for_path

try:  # the SDKs here ship httpx under the name httpx2
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

# Obviously fake keys in each provider's format; the last four characters are distinctive.
OPENAI_KEY = "sk-proj-test" + "C" * 40 + "T3BlbkFJ" + "D" * 36 + "Wx7q"
NOT_AN_ANTHROPIC_KEY = "sk-proj-test-pasted-into-the-wrong-card-" + "E" * 20


@pytest.fixture
def offline_hub():
    h = Hub("--offline", env={"WORKSHOP_HUB_PASSPHRASE": PASSPHRASE})
    yield h
    h.close()


def api_client(hub):
    """A management-API session of its own (the browser keeps its cookie to itself)."""
    c = httpx.Client(base_url=hub.base, timeout=30)
    r = c.post("/api/v1/session", json={"passphrase": PASSPHRASE})
    assert r.status_code == 200, r.text
    return c


def sign_in(driver, hub):
    driver.get(hub.url("/unlock"))
    assert driver.find_element(By.TAG_NAME, "h1").text == "Sign in"
    driver.find_element(By.NAME, "passphrase").send_keys(PASSPHRASE)
    driver.find_element(By.XPATH, "//button[normalize-space()='Sign in']").click()
    wait_for_path(driver, "/connectors")


def byok_card(driver, title):
    return driver.find_element(By.XPATH, f"//article[h3[normalize-space()='{title}']]")


def managed_tile(driver, provider):
    return driver.find_element(By.ID, f"conn-managed-{provider}")


def show(driver, element):
    """Scrolls `element` into view, so the screenshot shows what the step is about."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)


def badges(element):
    return [b.text for b in element.find_elements(By.CSS_SELECTOR, ".badge")]


def test_add_verify_mask_refuse_delete_and_enable(offline_hub, browser):
    hub = offline_hub
    api = api_client(hub)
    app = api.post("/api/v1/apps", json={"name": "Recipe bot"}).json()
    sdk = openai.OpenAI(api_key=app["key"], base_url=hub.url("/openai/v1"), max_retries=0)

    sign_in(browser, hub)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Connectors"
    assert browser.find_element(By.ID, "ai-models").text == "Managed connectors"
    assert "turns a managed connector off" in browser.find_element(By.CSS_SELECTOR, ".managed").text
    tiles = browser.find_elements(By.CSS_SELECTOR, ".managed .grid > article.tile")
    assert [t.find_element(By.TAG_NAME, "h3").text for t in tiles] == ["OpenAI", "Anthropic", "Google Gemini"]
    for tile in tiles:
        assert badges(tile) == ["Demo"]
        assert tile.find_element(By.LINK_TEXT, "Delete Connection")
    screenshot(browser, "connectors")

    # ---- add a BYOK connection through the OpenAI card
    card = byok_card(browser, "OpenAI (your API key)")
    card.find_element(By.XPATH, ".//label[contains(., 'Connection Name')]/input").send_keys("Work account")
    card.find_element(By.XPATH, ".//label[contains(., 'API Key')]/input").send_keys(OPENAI_KEY)
    click_and_load(browser, card.find_element(By.XPATH, ".//button[normalize-space()='Add Connection']"))
    wait_for_path(browser, "/connectors")
    notice = browser.find_element(By.CSS_SELECTOR, ".notice").text
    assert "Connection added" in notice and "fail" not in notice.lower(), notice
    conns = [c for c in api.get("/api/v1/connections").json()["data"] if c["kind"] == "byok"]
    assert len(conns) == 1 and conns[0]["provider"] == "openai" and conns[0]["name"] == "Work account"
    conn_id = conns[0]["id"]
    mine = browser.find_element(By.ID, f"conn-{conn_id}")
    assert "Work account" in mine.text and badges(mine) == ["Demo"]  # offline: the emulator answers
    hint = "sk-proj-…" + OPENAI_KEY[-4:]
    assert mine.find_element(By.CSS_SELECTOR, "p.mono").text == hint
    # Verified on adding: the list of models the key can use is there, opened.
    summary = mine.find_element(By.CSS_SELECTOR, "details summary").text
    assert re.match(r"\d+ models this connection can use", summary), summary
    models = [li.text for li in mine.find_elements(By.CSS_SELECTOR, ".model-list li")]
    assert "gpt-4o-mini" in models
    assert conns[0]["last_verified_at"] is not None and conns[0]["last_error"] is None
    assert OPENAI_KEY not in browser.page_source and OPENAI_KEY[12:40] not in browser.page_source
    show(browser, mine)
    screenshot(browser, "connectors-byok-added")

    first_check = conns[0]["last_verified_at"]
    click_and_load(browser, mine.find_element(By.XPATH, ".//button[normalize-space()='Verify']"))
    wait_for_path(browser, "/connectors")
    notice = browser.find_element(By.CSS_SELECTOR, ".notice").text
    assert re.search(r"Verified|Verification finished", notice) and "fail" not in notice.lower(), notice
    mine = browser.find_element(By.ID, f"conn-{conn_id}")
    assert "gpt-4o-mini" in [li.text for li in mine.find_elements(By.CSS_SELECTOR, ".model-list li")]
    assert mine.find_element(By.CSS_SELECTOR, "p.mono").text == hint
    assert api.get(f"/api/v1/connections/{conn_id}").json()["last_verified_at"] >= first_check
    assert OPENAI_KEY not in browser.page_source

    # ---- a key of the wrong format in the Anthropic card is refused and nothing is added
    card = byok_card(browser, "Anthropic (your API key)")
    card.find_element(By.XPATH, ".//label[contains(., 'Connection Name')]/input").send_keys("Wrong card")
    card.find_element(By.XPATH, ".//label[contains(., 'API Key')]/input").send_keys(NOT_AN_ANTHROPIC_KEY)
    click_and_load(browser, card.find_element(By.XPATH, ".//button[normalize-space()='Add Connection']"))
    card = byok_card(browser, "Anthropic (your API key)")
    alert = card.find_element(By.CSS_SELECTOR, ".alert")
    assert "sk-ant-" in alert.text
    assert NOT_AN_ANTHROPIC_KEY not in browser.page_source
    assert "Wrong card" not in [c["name"] for c in api.get("/api/v1/connections").json()["data"]]
    assert len(api.get("/api/v1/connections").json()["data"]) == 4
    show(browser, alert)
    screenshot(browser, "connectors-wrong-format")

    # ---- delete the managed OpenAI connection: the confirmation lists the app that loses access
    assert sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]).choices
    browser.get(hub.url("/connectors"))
    click_and_load(browser, managed_tile(browser, "openai").find_element(By.LINK_TEXT, "Delete Connection"))
    wait_for_path(browser, "/connectors/managed-openai/delete")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Delete OpenAI?"
    assert [li.text for li in browser.find_elements(By.CSS_SELECTOR, "main ul li")] == ["Recipe bot"]
    assert "connector_revoked" in browser.page_source
    screenshot(browser, "connectors-delete-confirm")
    click_and_load(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Delete Connection']"))
    wait_for_path(browser, "/connectors")
    tile = managed_tile(browser, "openai")
    assert badges(tile) == ["Off"]
    assert not tile.find_elements(By.LINK_TEXT, "Delete Connection")
    assert api.get("/api/v1/connections/managed-openai").json()["status"] == "disabled"
    with pytest.raises(openai.PermissionDeniedError) as e:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert e.value.code == "connector_revoked"
    show(browser, tile)
    screenshot(browser, "connectors-managed-deleted")

    click_and_load(browser, tile.find_element(By.XPATH, ".//button[normalize-space()='Enable']"))
    wait_for_path(browser, "/connectors")
    tile = managed_tile(browser, "openai")
    assert badges(tile) == ["Demo"]
    assert tile.find_element(By.LINK_TEXT, "Delete Connection")
    assert api.get("/api/v1/connections/managed-openai").json()["status"] == "active"
    assert sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]).choices
    show(browser, tile)
    screenshot(browser, "connectors-managed-enabled")
    api.close()
