"""Browser-test support: a real Hub process on a free port and headless Debian Chromium."""

import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import threading

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

ROOT = pathlib.Path(__file__).resolve().parents[2]
PASSPHRASE = "correct horse battery staple"
SHOTS = ROOT / "target" / "screenshots"


def hub_binary():
    return os.environ.get("WORKSHOP_HUB_BIN", str(ROOT / "target" / "debug" / "workshop-hub"))


class Hub:
    """A running `workshop-hub serve` with its own data dir; stopped by `close`."""

    def __init__(self, *args, env=None):
        self.tmp = tempfile.mkdtemp(prefix="whub-browser-")
        clean = {k: v for k, v in os.environ.items() if not k.startswith("WORKSHOP_HUB_")}
        clean.update(env or {})
        self.proc = subprocess.Popen(
            [hub_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", self.tmp + "/data", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean,
            text=True,
        )
        line = self.proc.stdout.readline()
        match = re.match(r"listening on (http://\S+)", line)
        if not match:
            self.close()
            raise RuntimeError(f"hub did not start: {line!r} {self.proc.stderr.read()}")
        self.base = match.group(1)
        self.log = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def url(self, path):
        return self.base + path

    def close(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def hub():
    h = Hub()
    yield h
    h.close()


DESKTOP = (1280, 900)
PHONE = (360, 800)


def new_driver(size=DESKTOP, javascript=True):
    """Headless Debian Chromium with a fresh profile; returns (driver, profile dir)."""
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    profile = tempfile.TemporaryDirectory(prefix="whub-chromium-")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--window-size={size[0]},{size[1]}",
        f"--user-data-dir={profile.name}",
    ):
        options.add_argument(flag)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    driver.implicitly_wait(5)
    return driver, profile


@pytest.fixture
def browser():
    driver, profile = new_driver()
    yield driver
    driver.quit()
    profile.cleanup()


def wait_for_path(driver, path, timeout=10):
    """Waits until the browser shows `path` (navigation after a click is asynchronous)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: d.current_url.split("#")[0].split("?")[0].endswith(path))


def click_and_load(driver, element, timeout=10):
    """Clicks something that loads a new page and waits until the old page is gone, so the
    next lookup never finds an element of the page being left (same URL or not)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from selenium.common.exceptions import WebDriverException

    old = driver.find_element(By.TAG_NAME, "html")
    element.click()

    def gone(_):
        # Mid-navigation Chromium may answer "node does not belong to the document" rather
        # than "stale element": both mean the old page is gone.
        try:
            return expected_conditions.staleness_of(old)(driver)
        except WebDriverException:
            return True

    WebDriverWait(driver, timeout).until(gone)
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script("return document.readyState") == "complete")


def screenshot(driver, name):
    """Keeps a picture of what the person saw, for a human to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
