"""Starts the real `workshop-hub emulator` binary on a free port for the SDK tests."""

import os
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _start(*extra):
    binary = os.environ.get("WORKSHOP_HUB_BIN", str(ROOT / "target" / "debug" / "workshop-hub"))
    proc = subprocess.Popen(
        [binary, "emulator", "--listen", "127.0.0.1:0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip()
    match = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"emulator did not start: {line!r} {proc.stderr.read()!r}")
    return proc, match.group(1)


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def emulator_url():
    """Base URL (no trailing slash) of an emulator with no latency and no pacing."""
    proc, url = _start()
    yield url
    _stop(proc)


@pytest.fixture(scope="session")
def paced_emulator_url():
    """An emulator with 200 ms first-byte latency and 50 tokens per second."""
    proc, url = _start("--latency-ms", "200", "--tokens-per-second", "50")
    yield url
    _stop(proc)
