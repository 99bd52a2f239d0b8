"""Every provider fault through the Hub, as each official SDK sees it: the exception class an
app catches, the usage record, the credits (charged for what was produced, nothing else), no
credit hold left behind, and a normal call working right after.

Managed connections in demo mode reach the built-in emulator, which injects each fault on the
`x-emulator-fault` header; a second app is bound to BYOK connections whose base URL is a closed
port (unreachable upstream). The results table is written at the end of the module.
"""

import socket
import time

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from hub_process import ANTHROPIC_KEY, GEMINI_KEY, OPENAI_KEY, HubProcess

try:  # the SDKs here ship httpx under the name httpx2
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

FAULTS = [
    "rate_limit",
    "insufficient_quota",
    "server_error",
    "overloaded",
    "timeout",
    "drop_mid_stream",
    "error_mid_stream",
    "slow",
    "unreachable",
]
PROMPT = [{"role": "user", "content": "Tell me about lighthouses."}]

# What each SDK raises, by (fault, streamed); None: the call succeeds. A stream that is cut
# raises while it is read, from the HTTP library underneath (the SDKs do not wrap it).
CUT = (httpx.HTTPError, openai.APIConnectionError, anthropic.APIConnectionError)
EXPECTED = {
    "openai": {
        "rate_limit": openai.RateLimitError,
        "insufficient_quota": openai.RateLimitError,
        "server_error": openai.InternalServerError,
        "overloaded": openai.InternalServerError,
        "timeout": openai.InternalServerError,
        ("drop_mid_stream", False): openai.InternalServerError,
        ("drop_mid_stream", True): CUT,
        ("error_mid_stream", False): openai.InternalServerError,
        ("error_mid_stream", True): openai.APIError,
        "slow": None,
        "unreachable": openai.InternalServerError,
    },
    "anthropic": {
        "rate_limit": anthropic.RateLimitError,
        "insufficient_quota": anthropic.BadRequestError,
        "server_error": anthropic.InternalServerError,
        "overloaded": anthropic.OverloadedError,
        "timeout": anthropic.GatewayTimeoutError,
        ("drop_mid_stream", False): anthropic.InternalServerError,
        ("drop_mid_stream", True): CUT,
        ("error_mid_stream", False): anthropic.OverloadedError,
        ("error_mid_stream", True): anthropic.APIStatusError,
        "slow": None,
        "unreachable": anthropic.InternalServerError,
    },
    "gemini": {
        "rate_limit": genai_errors.ClientError,
        "insufficient_quota": genai_errors.ClientError,
        "server_error": genai_errors.ServerError,
        "overloaded": genai_errors.ServerError,
        "timeout": genai_errors.ServerError,
        ("drop_mid_stream", False): genai_errors.ServerError,
        ("drop_mid_stream", True): (httpx.HTTPError, genai_errors.APIError),
        ("error_mid_stream", False): genai_errors.ServerError,
        ("error_mid_stream", True): genai_errors.APIError,
        "slow": None,
        "unreachable": genai_errors.ServerError,
    },
}

# Faults after which some output reached the app, so some tokens are charged.
PRODUCED = {("drop_mid_stream", True), ("error_mid_stream", True), ("slow", False), ("slow", True)}


def expected(provider, fault, stream):
    table = EXPECTED[provider]
    return table.get((fault, stream), table.get(fault))


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def hub():
    closed = f"http://127.0.0.1:{closed_port()}"
    h = HubProcess(
        "--openai-base-url", closed,
        "--anthropic-base-url", closed,
        "--gemini-base-url", closed,
        "--upstream-timeout-secs", "3",
    )
    yield h
    h.close()


@pytest.fixture(scope="module")
def keys(hub):
    managed = hub.create_app("faults")["key"]
    byok = hub.create_app("unreachable")
    bindings = {
        p: hub.add_connection(p, f"closed {p}", k)["id"]
        for p, k in [("openai", OPENAI_KEY), ("anthropic", ANTHROPIC_KEY), ("gemini", GEMINI_KEY)]
    }
    hub.patch_app(byok["id"], connections=bindings)
    return {"managed": managed, "unreachable": byok["key"]}


@pytest.fixture(scope="module")
def table(request):
    rows = []
    yield rows
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    lines = [f"{'provider':<10} {'fault':<19} {'stream':<6} {'raised':<28} {'record':<27} {'charged':>7} held"]
    lines += [
        f"{r['provider']:<10} {r['fault']:<19} {str(r['stream']):<6} {r['raised']:<28} "
        f"{r['code']:<27} {r['charged']:>7} {r['held']}"
        for r in rows
    ]
    lines.append(f"{len(rows)} SDK fault rows")
    # Written past the output capture, so the table shows in a normal run.
    with capture.global_and_fixture_disabled():
        print("\n" + "\n".join(lines))


def run_openai(hub, key, stream, headers):
    client = openai.OpenAI(api_key=key, base_url=f"{hub.base}/openai/v1", max_retries=0,
                           default_headers=headers, timeout=30)
    if stream:
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, max_tokens=12,
                                                stream=True, stream_options={"include_usage": True}):
            pass
    else:
        client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, max_tokens=12)


def run_anthropic(hub, key, stream, headers):
    client = anthropic.Anthropic(api_key=key, base_url=f"{hub.base}/anthropic", max_retries=0,
                                 default_headers=headers, timeout=30)
    if stream:
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=12, messages=PROMPT) as s:
            for _ in s:
                pass
    else:
        client.messages.create(model="claude-haiku-4-5", max_tokens=12, messages=PROMPT)


def run_gemini(hub, key, stream, headers):
    client = genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=f"{hub.base}/gemini", headers=headers, timeout=30_000))
    config = types.GenerateContentConfig(max_output_tokens=12)
    if stream:
        for _ in client.models.generate_content_stream(model="gemini-2.5-flash", contents="Lighthouses?",
                                                       config=config):
            pass
    else:
        client.models.generate_content(model="gemini-2.5-flash", contents="Lighthouses?", config=config)


RUN = {"openai": run_openai, "anthropic": run_anthropic, "gemini": run_gemini}


def credits(hub):
    return hub.call("GET", "/api/v1/credits", expect=200).json()


def settled(hub):
    """The balance is the ledger's grants and top-ups less every managed cost recorded, with no
    hold open (waiting out a stream that is still being recorded)."""
    deadline = time.monotonic() + 5
    while True:
        c = credits(hub)
        rows = hub.usage_rows()
        spent = sum(r["cost_micro_usd"] or 0 for r in rows if r["billed_to"] == "credits")
        if (c["held_micro_usd"] == 0 and c["balance_micro_usd"] == 5_000_000 - spent) or time.monotonic() > deadline:
            return c["held_micro_usd"], c["balance_micro_usd"] == 5_000_000 - spent


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("stream", [False, True])
def test_each_fault_raises_the_sdk_error_and_charges_right(hub, keys, table, provider, fault, stream):
    key = keys["unreachable" if fault == "unreachable" else "managed"]
    headers = {} if fault == "unreachable" else {"x-emulator-fault": fault}
    before = hub.usage_count()
    want = expected(provider, fault, stream)
    raised = None
    try:
        RUN[provider](hub, key, stream, headers)
    except Exception as e:  # noqa: BLE001 - the class is what is checked
        raised = e
    rows = hub.wait_usage(before + 1)
    assert len(rows) == before + 1, f"one record per call: {rows[before:]}"
    row = rows[-1]
    held, balanced = settled(hub)
    table.append({
        "provider": provider, "fault": fault, "stream": stream,
        "raised": type(raised).__name__ if raised else "-",
        "code": row["error_code"] or "ok", "charged": row["cost_micro_usd"], "held": held,
    })
    if want is None:
        assert raised is None, repr(raised)
    else:
        assert isinstance(raised, want), f"{provider} {fault} stream={stream}: {raised!r}"
    if (fault, stream) in PRODUCED:
        assert row["cost_micro_usd"] > 0, row
    else:
        assert row["cost_micro_usd"] == 0, row
    assert held == 0 and balanced
    # The Hub still answers a normal call right away.
    RUN[provider](hub, keys["managed"], False, {})
    assert hub.wait_usage(before + 2)[-1]["error_code"] is None
