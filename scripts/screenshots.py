#!/usr/bin/env python3
"""Makes the README's screenshots: starts a fresh Hub (demo mode, a throwaway data dir), walks
the main pages in headless Chromium at desktop and phone size, and writes PNGs to docs/ (or the
directory given as the first argument). Run after `cargo build`:

    .venv/bin/python scripts/screenshots.py [OUT_DIR]
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from conftest import PASSPHRASE, Hub, new_driver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

PAGES = ["welcome", "connectors", "apps", "playground", "usage"]
SIZES = {"desktop": (1280, 900), "phone": (360, 800)}


def set_up(driver, hub):
    driver.get(hub.url("/setup"))
    driver.find_element(By.NAME, "passphrase").send_keys(PASSPHRASE)
    driver.find_element(By.NAME, "confirm").send_keys(PASSPHRASE)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(driver, 20).until(lambda d: d.current_url.endswith("/welcome"))


def fill_in(driver, hub):
    """Gives the pages something to show: an app with one call, a Playground answer."""
    driver.get(hub.url("/apps"))
    driver.find_element(By.NAME, "name").send_keys("Recipe bot")
    driver.find_element(By.XPATH, "//button[normalize-space()='Create app']").click()
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "app-key"))


def ask(driver, hub):
    driver.get(hub.url("/playground"))
    driver.find_element(By.NAME, "prompt").send_keys("Write a haiku about local-first software")
    driver.find_element(By.XPATH, "//button[normalize-space()='Send']").click()
    WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "answer-meta").is_displayed())
    driver.execute_script("document.getElementById('answer').scrollIntoView()")


def main():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    out.mkdir(parents=True, exist_ok=True)
    hub = Hub()
    driver, profile = new_driver()
    try:
        set_up(driver, hub)
        fill_in(driver, hub)
        for size, (width, height) in SIZES.items():
            driver.set_window_size(width, height)
            for page in PAGES:
                if page == "playground":
                    ask(driver, hub)
                else:
                    driver.get(hub.url("/" + page))
                driver.save_screenshot(str(out / f"{page}-{size}.png"))
    finally:
        driver.quit()
        hub.close()
        profile.cleanup()


if __name__ == "__main__":
    main()
