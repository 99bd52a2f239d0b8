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

PAGES = ["welcome", "connectors", "apps", "models", "playground", "usage", "settings"]
SIZES = {"desktop": (1280, 900), "phone": (360, 800)}


def set_up(driver, hub):
    driver.get(hub.url("/setup"))
    driver.find_element(By.NAME, "passphrase").send_keys(PASSPHRASE)
    driver.find_element(By.NAME, "confirm").send_keys(PASSPHRASE)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()


def main():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    out.mkdir(parents=True, exist_ok=True)
    hub = Hub()
    driver, profile = new_driver()
    try:
        set_up(driver, hub)
        for size, (width, height) in SIZES.items():
            driver.set_window_size(width, height)
            for page in PAGES:
                driver.get(hub.url("/" + page))
                full = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(width, min(max(height, full + 140), 4000))
                driver.save_screenshot(str(out / f"{page}-{size}.png"))
                driver.set_window_size(width, height)
    finally:
        driver.quit()
        hub.close()
        profile.cleanup()


if __name__ == "__main__":
    main()
