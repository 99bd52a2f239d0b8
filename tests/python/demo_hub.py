"""The `hub` fixture the agent and framework tests share: one Hub per test module, its
managed connections in demo mode so the built-in emulator answers every call."""

import pytest

from hub_process import HubProcess


@pytest.fixture(scope="module")
def hub():
    h = HubProcess()
    yield h
    h.close()
