"""Usage & Billing in a real browser: sign in, read the balance, add credits through the
form, and find the spend chart and the CSV export; then the Models page's prices; and the
requests an app just made through the gateway, in the tables and the chart."""

import pytest
from openai import OpenAI
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from conftest import Hub, PASSPHRASE, click_and_load, screenshot, wait_for_path


@pytest.fixture
def headless_hub():
    h = Hub(env={"WORKSHOP_HUB_PASSPHRASE": PASSPHRASE})
    yield h
    h.close()


def sign_in(browser, hub):
    browser.get(hub.url("/"))
    wait_for_path(browser, "/unlock")
    browser.find_element(By.NAME, "passphrase").send_keys(PASSPHRASE)
    browser.find_element(By.XPATH, "//button[normalize-space()='Sign in']").click()
    wait_for_path(browser, "/connectors")


def nav(browser, label):
    browser.find_element(By.XPATH, f"//nav//a[normalize-space()='{label}']").click()


def test_add_credits_and_see_the_chart(headless_hub, browser):
    hub = headless_hub
    sign_in(browser, hub)
    nav(browser, "Usage & Billing")
    wait_for_path(browser, "/usage")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Usage & Billing"
    assert browser.find_element(By.ID, "balance").text == "$5.00"
    assert "No requests yet" in browser.page_source

    # A typo is explained and nothing is added.
    amount = browser.find_element(By.NAME, "amount")
    amount.send_keys("2,50")
    click_and_load(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Add credits']"))
    assert "not an amount" in browser.find_element(By.CSS_SELECTOR, ".alert").text
    assert browser.find_element(By.ID, "balance").text == "$5.00"

    amount = browser.find_element(By.NAME, "amount")
    amount.clear()
    amount.send_keys("2.50")
    browser.find_element(By.NAME, "note").send_keys("Browser test")
    click_and_load(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Add credits']"))
    wait_for_path(browser, "/usage")
    assert browser.find_element(By.ID, "balance").text == "$7.50"
    assert "Added $2.50" in browser.find_element(By.CSS_SELECTOR, ".notice").text
    assert browser.find_element(By.CSS_SELECTOR, ".sidebar .balance strong").text == "$7.50"
    assert "Browser test" in browser.find_element(By.CSS_SELECTOR, "table.ledger").text

    chart = browser.find_element(By.CSS_SELECTOR, "figure.chart svg")
    assert chart.size["width"] > 300 and chart.size["height"] > 100
    legend = chart.text
    for provider in ("OpenAI", "Anthropic", "Google Gemini"):
        assert provider in legend
    csv = browser.find_element(By.ID, "export-csv")
    assert csv.text == "Export CSV"
    assert "/api/v1/usage.csv?from=" in csv.get_attribute("href"), "the export covers the period shown"
    screenshot(browser, "usage")

    nav(browser, "Models")
    wait_for_path(browser, "/models")
    row = browser.find_element(By.ID, "model-openai-gpt-4o-mini")
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    assert cells[1] == "$0.15" and cells[4] == "$0.60", cells
    assert "OpenAI" in cells[-1]
    screenshot(browser, "models")


def create_app_in_browser(browser, hub, name):
    nav(browser, "Apps")
    wait_for_path(browser, "/apps")
    browser.find_element(By.NAME, "name").send_keys(name)
    click_and_load(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Create app']"))
    return browser.find_element(By.ID, "app-key").text.strip()


def test_requests_just_made_show_up(headless_hub, browser):
    hub = headless_hub
    sign_in(browser, hub)
    key = create_app_in_browser(browser, hub, "Chart check")
    client = OpenAI(base_url=hub.url("/openai/v1"), api_key=key, max_retries=0)
    usage = []
    for prompt in ("Hello there", "Tell me about the sea"):
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
        )
        usage.append(reply.usage)
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage.append([c for c in stream][-1].usage)
    # gpt-4o-mini: $0.15/M input, $0.60/M output; each request rounds up to the micro-dollar.
    expected = sum(-(-(u.prompt_tokens * 150_000 + u.completion_tokens * 600_000) // 1_000_000) for u in usage)

    nav(browser, "Usage & Billing")
    wait_for_path(browser, "/usage")
    # The balance reads to the cent; the exact amount is on hover.
    balance = browser.find_element(By.CSS_SELECTOR, "#balance .money")
    assert balance.get_attribute("title") == "Exactly " + dollars(5_000_000 - expected), (balance.get_attribute("title"), expected)
    assert balance.text == "$5.00"
    recent = browser.find_element(By.CSS_SELECTOR, "table.requests").text
    assert recent.count("gpt-4o-mini-2024-07-18") == 3, recent
    assert "Chart check" in browser.page_source
    bars = browser.find_elements(By.CSS_SELECTOR, "figure.chart svg rect.bar")
    assert bars, "today's spend is drawn"
    screenshot(browser, "usage-after-requests")

    # Narrowed to one app and one outcome, the totals, the chart and the export follow.
    filters = browser.find_element(By.ID, "filters")
    app = Select(filters.find_element(By.NAME, "app"))
    app.select_by_visible_text("Chart check")
    click_and_load(browser, filters.find_element(By.XPATH, ".//button[normalize-space()='Apply']"))
    assert "app=" in browser.current_url
    assert browser.find_element(By.ID, "total-requests").text == "3"
    assert browser.find_element(By.CSS_SELECTOR, "#total-credits .money").get_attribute("title") == "Exactly " + dollars(expected)
    assert "app=" in browser.find_element(By.ID, "export-csv").get_attribute("href")
    filters = browser.find_element(By.ID, "filters")
    Select(filters.find_element(By.NAME, "status")).select_by_value("error")
    click_and_load(browser, filters.find_element(By.XPATH, ".//button[normalize-space()='Apply']"))
    assert browser.find_element(By.ID, "total-requests").text == "0"
    assert not browser.find_elements(By.CSS_SELECTOR, "figure.chart svg rect.bar"), "no spend on failures"


def dollars(micro):
    """The Hub's way of showing money: cents when whole, otherwise up to six decimals."""
    whole, frac = divmod(micro, 1_000_000)
    if frac % 10_000 == 0:
        return f"${whole}.{frac // 10_000:02d}"
    return f"${whole}." + f"{frac:06d}".rstrip("0")
