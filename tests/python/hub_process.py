"""A real `workshop-hub serve` (and standalone `workshop-hub emulator`) for black-box tests.

Each `HubProcess` has its own temporary data dir, a passphrase given by environment (headless
unlock), a signed-in management session (`api`), and read-only access to its SQLite database
for the usage records and the ledger.
"""

import os
import pathlib
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time

try:  # the SDKs here ship httpx under the name httpx2
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

ROOT = pathlib.Path(__file__).resolve().parents[2]
PASSPHRASE = "correct horse battery staple"
GRANT_MICRO_USD = 5_000_000

# Obviously fake provider keys in each provider's format.
OPENAI_KEY = "sk-proj-test" + "A" * 40 + "T3BlbkFJ" + "B" * 36 + "q7Zk"
ANTHROPIC_KEY = "sk-ant-api03-test" + "x" * 78 + "w9AA"
GEMINI_KEY = "AIzaTest" + "y" * 27 + "G3mK"  # 39 characters

USAGE_COLUMNS = (
    "provider, model, endpoint, streamed, status, error_code, input_tokens, cached_input_tokens, "
    "cache_write_tokens, output_tokens, reasoning_tokens, cost_micro_usd, billed_to, estimated, "
    "latency_ms, ttfb_ms"
)

assert len(GEMINI_KEY) == 39


def hub_binary():
    return os.environ.get("WORKSHOP_HUB_BIN", str(ROOT / "target" / "debug" / "workshop-hub"))


def _clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKSHOP_HUB_")}
    env.update(extra or {})
    return env


def _read_listen_line(proc, what):
    line = proc.stdout.readline().strip()
    match = re.match(r"listening on (http://127\.0\.0\.1:\d+)", line)
    if not match:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{what} did not start: {line!r} {proc.stderr.read()!r}")
    return match.group(1)


def _stop(proc):
    # No graceful shutdown: it waits for idle keep-alive connections of the SDK clients.
    if proc.poll() is None:
        proc.kill()
    proc.wait()


class EmulatorProcess:
    """A standalone `workshop-hub emulator` used as the real upstream of a Hub."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [hub_binary(), "emulator", "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_clean_env(),
            text=True,
        )
        self.url = _read_listen_line(self.proc, "emulator")
        threading.Thread(target=lambda: self.proc.stderr.read(), daemon=True).start()

    def received(self):
        r = httpx.get(f"{self.url}/__emulator/received", timeout=10)
        r.raise_for_status()
        return r.json()

    def close(self):
        _stop(self.proc)


class HubProcess:
    """A running Hub with its own data dir; `close()` stops it and removes the dir."""

    def __init__(self, *args, passphrase=PASSPHRASE):
        self.tmp = tempfile.mkdtemp(prefix="whub-py-")
        self.data_dir = os.path.join(self.tmp, "data")
        self.passphrase = passphrase
        self.proc = subprocess.Popen(
            [hub_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_clean_env({"WORKSHOP_HUB_PASSPHRASE": passphrase}),
            text=True,
        )
        try:
            self.base = _read_listen_line(self.proc, "hub")
        except RuntimeError:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        self.log = []
        threading.Thread(target=self._drain, daemon=True).start()
        self.api = httpx.Client(base_url=self.base, timeout=30)
        self.sign_in()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    # ---- management API

    def sign_in(self):
        r = self.api.post("/api/v1/session", json={"passphrase": self.passphrase})
        assert r.status_code in (200, 201, 204), (r.status_code, r.text)
        assert "whub_session" in self.api.cookies, r.headers
        return r

    def call(self, method, path, body=None, expect=None):
        kw = {"json": body} if body is not None else {}
        if method != "GET":
            kw["headers"] = {"content-type": "application/json"}
        r = self.api.request(method, path, **kw)
        if expect is not None:
            assert r.status_code == expect, (method, path, r.status_code, r.text)
        return r

    def create_app(self, name="app", **fields):
        r = self.call("POST", "/api/v1/apps", {"name": name, **fields}, expect=201)
        return r.json()

    def patch_app(self, app_id, **fields):
        return self.call("PATCH", f"/api/v1/apps/{app_id}", fields, expect=200).json()

    def add_connection(self, provider, name, api_key):
        r = self.call("POST", "/api/v1/connections", {"provider": provider, "name": name, "api_key": api_key})
        assert r.status_code == 201, r.text
        return r.json()

    def connection(self, conn_id):
        return self.call("GET", f"/api/v1/connections/{conn_id}", expect=200).json()

    # ---- database (read-only while the Hub runs)

    def db(self):
        path = os.path.join(self.data_dir, "hub.db")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def usage_rows(self):
        """Every usage record, oldest first, as dicts."""
        with self.db() as conn:
            rows = conn.execute(f"SELECT rowid AS rid, {USAGE_COLUMNS} FROM usage_records ORDER BY rowid").fetchall()
        return [dict(r) for r in rows]

    def usage_count(self):
        with self.db() as conn:
            return conn.execute("SELECT COUNT(*) FROM usage_records").fetchone()[0]

    def wait_usage(self, count, timeout=10):
        """Waits until at least `count` usage records exist (streams are recorded at their end)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.usage_rows()
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)

    def balance(self):
        with self.db() as conn:
            return conn.execute("SELECT COALESCE(SUM(amount_micro_usd), 0) FROM ledger").fetchone()[0]

    # ---- lifetime

    def close(self):
        try:
            self.api.close()
        finally:
            _stop(self.proc)
            shutil.rmtree(self.tmp, ignore_errors=True)
