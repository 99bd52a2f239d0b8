"""The official SDKs (openai, anthropic, google-genai) through the Hub's gateway.

The SDKs are used unmodified except for the base URL and the key: the app key goes where the
SDK puts the provider key. Every test starts from a real `workshop-hub serve` process; the
upstream is the Hub's built-in emulator (managed demo connections, or `--offline`) or a
standalone `workshop-hub emulator` given as the provider base URL.
"""

import json
import math
import pathlib
import re
import socket
import time
from fractions import Fraction

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from hub_process import (
    ANTHROPIC_KEY,
    GEMINI_KEY,
    GRANT_MICRO_USD,
    OPENAI_KEY,
    EmulatorProcess,
    HubProcess,
    httpx,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROMPT = "Tell me about the Hub."

# ---------------------------------------------------------------- helpers


def _catalog():
    """Model prices (USD per million tokens = micro-USD per token), by every name they answer to."""
    data = json.loads((ROOT / "src" / "catalog" / "models.json").read_text())
    prices = {}
    for provider in ("openai", "anthropic", "gemini"):
        for m in data[provider]:
            for name in [m["id"], m.get("served_as"), *m.get("aliases", [])]:
                if name:
                    prices[(provider, name)] = m["price"]
    return prices


PRICES = _catalog()


def expected_cost(row):
    """The exact cost of a usage record at list price, rounded up once to the micro-USD."""
    price = PRICES[(row["provider"], row["model"])]
    rate = lambda k: Fraction(str(price.get(k) if price.get(k) is not None else price["input"]))  # noqa: E731
    uncached = row["input_tokens"] - row["cached_input_tokens"] - row["cache_write_tokens"]
    exact = (
        uncached * rate("input")
        + row["cached_input_tokens"] * rate("cached_input")
        + row["output_tokens"] * Fraction(str(price["output"]))
    )
    assert row["cache_write_tokens"] == 0, "these tests send nothing cacheable"
    return math.ceil(exact)


def dollars(micro):
    """The Hub's money format: `$5.00`, `$4.999946`."""
    whole, frac = divmod(micro, 1_000_000)
    if frac % 10_000 == 0:
        return f"${whole}.{frac // 10_000:02d}"
    return f"${whole}." + f"{frac:06d}".rstrip("0")


def oai(hub, key, **kw):
    return openai.OpenAI(api_key=key, base_url=f"{hub.base}/openai/v1", max_retries=0, **kw)


def ant(hub, key, **kw):
    return anthropic.Anthropic(api_key=key, base_url=f"{hub.base}/anthropic", max_retries=0, **kw)


def gem(hub, key, **kw):
    # Keep the client in a variable while using it: it closes its HTTP client when collected.
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=f"{hub.base}/gemini", **kw))


def say(text=PROMPT):
    return [{"role": "user", "content": text}]


class Meter:
    """Watches one Hub's usage records and ledger across one or more calls."""

    def __init__(self, hub):
        self.hub = hub
        self.count = hub.usage_count()
        self.balance = hub.balance()

    def new_rows(self, n):
        """Exactly `n` new records (waiting for streams to be recorded), with the ledger settled."""
        rows = self.hub.wait_usage(self.count + n)
        time.sleep(0.15)  # anything extra would show up now
        rows = self.hub.usage_rows()
        assert len(rows) == self.count + n, rows[self.count:]
        new = rows[self.count:]
        spent = sum(r["cost_micro_usd"] or 0 for r in new if r["billed_to"] == "credits")
        deadline = time.monotonic() + 5
        while self.hub.balance() != self.balance - spent and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.hub.balance() == self.balance - spent
        assert_ledger_matches_records(self.hub)
        self.count, self.balance = len(rows), self.balance - spent
        return new

    def one(self):
        return self.new_rows(1)[0]

    def refused(self, code, n=1):
        """Exactly `n` new records, each the Hub's refusal `code`: free, billed to no one."""
        new = self.new_rows(n)
        for r in new:
            assert r["error_code"] == code and r["billed_to"] == "none", r
            assert r["cost_micro_usd"] == 0 and r["input_tokens"] == 0 and r["output_tokens"] == 0, r
        return new

    def nothing(self):
        """No record and no credits spent since the last look."""
        time.sleep(0.2)
        assert self.hub.usage_count() == self.count
        assert self.hub.balance() == self.balance


def assert_ledger_matches_records(hub):
    rows = hub.usage_rows()
    credits = sum(r["cost_micro_usd"] or 0 for r in rows if r["billed_to"] == "credits")
    assert hub.balance() == GRANT_MICRO_USD - credits


def assert_priced(row, provider, model, endpoint, streamed=False):
    assert row["provider"] == provider
    assert row["model"] == model
    assert row["endpoint"] == endpoint
    assert row["streamed"] == int(streamed)
    assert row["status"] == 200 and row["error_code"] is None
    assert row["billed_to"] == "credits"
    assert row["estimated"] == 0
    assert row["cost_micro_usd"] == expected_cost(row) > 0


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def hub():
    """A Hub with its managed connections in demo mode (answered by the built-in emulator)."""
    h = HubProcess()
    yield h
    h.close()


@pytest.fixture(scope="module")
def key(hub):
    return hub.create_app("metered")["key"]


@pytest.fixture(scope="module")
def offline_hub():
    h = HubProcess("--offline")
    yield h
    h.close()


# ---------------------------------------------------------------- management API connection reuse


def test_a_json_call_whose_body_is_ignored_keeps_the_connection_usable(hub):
    """Clients send the head and the body in two writes (httpx does). When a handler has no use
    for the body (enable a managed connection, lock, verify), the Hub must still read it, or
    close the connection *saying so* (`Connection: close`). Answering as if the connection stayed
    open and then dropping it makes the client's next request fail with "Server disconnected"."""
    cookie = "; ".join(f"{k}={v}" for k, v in hub.api.cookies.items())
    host, port = hub.base.removeprefix("http://").split(":")
    body = b"{}"
    head = (
        f"POST /api/v1/connections/managed/openai HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nCookie: {cookie}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(head)
        time.sleep(0.05)  # the body follows in its own segment, as from httpx
        s.sendall(body)
        first = _read_response(s)
        assert first.startswith(b"HTTP/1.1 200"), first[:80]
        if b"connection: close" in first.lower():
            return  # closing is fine when announced
        try:
            s.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            second = _read_response(s)
        except OSError as e:  # broken pipe / reset
            second = repr(e).encode()
        assert second.startswith(b"HTTP/1.1 200"), f"keep-alive connection dropped: {second[:80]!r}"


def _read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    want = int(length.group(1)) if length else 0
    while len(rest) < want:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest


# ---------------------------------------------------------------- OpenAI


def test_openai_chat_usage_is_the_record(hub, key):
    meter = Meter(hub)
    r = oai(hub, key).chat.completions.create(model="gpt-4o-mini", messages=say())
    assert r.model == "gpt-4o-mini-2024-07-18"
    assert "Workshop Hub" in r.choices[0].message.content
    row = meter.one()
    assert_priced(row, "openai", "gpt-4o-mini-2024-07-18", "chat_completions")
    assert row["input_tokens"] == r.usage.prompt_tokens > 0
    assert row["output_tokens"] == r.usage.completion_tokens > 0
    assert row["cached_input_tokens"] == r.usage.prompt_tokens_details.cached_tokens
    assert row["reasoning_tokens"] == r.usage.completion_tokens_details.reasoning_tokens
    assert row["latency_ms"] is not None and row["ttfb_ms"] is not None


def test_openai_stream_without_include_usage_hides_it(hub, key):
    c = oai(hub, key)
    plain = c.chat.completions.create(model="gpt-4o-mini", messages=say())
    meter = Meter(hub)
    chunks = list(c.chat.completions.create(model="gpt-4o-mini", messages=say(), stream=True))
    assert chunks and all(ch.usage is None for ch in chunks)
    assert all(ch.choices for ch in chunks), "the usage-only chunk the Hub asked for leaked"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    assert text == plain.choices[0].message.content
    row = meter.one()
    assert_priced(row, "openai", "gpt-4o-mini-2024-07-18", "chat_completions", streamed=True)
    assert (row["input_tokens"], row["output_tokens"]) == (plain.usage.prompt_tokens, plain.usage.completion_tokens)

    # The same on the wire: no frame carries a usage key, and the stream still ends with [DONE].
    raw = httpx.post(
        f"{hub.base}/openai/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "gpt-4o-mini", "messages": say(), "stream": True},
        timeout=30,
    )
    assert raw.status_code == 200
    frames = [line[6:] for line in raw.text.split("\n") if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    assert all("usage" not in json.loads(f) for f in frames[:-1])
    meter.one()


def test_openai_stream_with_include_usage(hub, key):
    meter = Meter(hub)
    chunks = list(
        oai(hub, key).chat.completions.create(
            model="gpt-4o-mini", messages=say(), stream=True, stream_options={"include_usage": True}
        )
    )
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert all(ch.usage is None for ch in chunks[:-1])
    row = meter.one()
    assert_priced(row, "openai", "gpt-4o-mini-2024-07-18", "chat_completions", streamed=True)
    assert row["input_tokens"] == last.usage.prompt_tokens
    assert row["output_tokens"] == last.usage.completion_tokens > 0


def test_openai_responses_plain_and_stream(hub, key):
    c = oai(hub, key)
    meter = Meter(hub)
    r = c.responses.create(model="gpt-4.1", input="Tell me a bedtime story.")
    assert r.model == "gpt-4.1-2025-04-14" and r.status == "completed"
    row = meter.one()
    assert_priced(row, "openai", "gpt-4.1-2025-04-14", "responses")
    assert (row["input_tokens"], row["output_tokens"]) == (r.usage.input_tokens, r.usage.output_tokens)

    events = list(c.responses.create(model="gpt-4.1", input="Tell me a bedtime story.", stream=True))
    assert events[-1].type == "response.completed"
    usage = events[-1].response.usage
    row = meter.one()
    assert_priced(row, "openai", "gpt-4.1-2025-04-14", "responses", streamed=True)
    assert (row["input_tokens"], row["output_tokens"]) == (usage.input_tokens, usage.output_tokens)
    assert usage.output_tokens > 0


def test_openai_reasoning_tokens_are_recorded(hub, key):
    meter = Meter(hub)
    r = oai(hub, key).chat.completions.create(model="gpt-5-mini", messages=say("think"), reasoning_effort="high")
    row = meter.one()
    assert_priced(row, "openai", "gpt-5-mini-2025-08-07", "chat_completions")
    assert row["reasoning_tokens"] == r.usage.completion_tokens_details.reasoning_tokens > 0
    assert row["output_tokens"] == r.usage.completion_tokens


def test_openai_embeddings(hub, key):
    meter = Meter(hub)
    r = oai(hub, key).embeddings.create(model="text-embedding-3-small", input="The food was delicious")
    assert len(r.data[0].embedding) == 1536
    row = meter.one()
    assert_priced(row, "openai", "text-embedding-3-small", "embeddings")
    assert row["input_tokens"] == r.usage.prompt_tokens > 0
    assert row["output_tokens"] == 0


def test_openai_models_list(hub, key):
    meter = Meter(hub)
    ids = [m.id for m in oai(hub, key).models.list()]
    assert "gpt-4o-mini" in ids and "text-embedding-3-small" in ids
    row = meter.one()
    assert row["endpoint"] == "list_models" and row["status"] == 200 and row["billed_to"] == "none"
    assert row["input_tokens"] == row["output_tokens"] == 0
    assert (row["cost_micro_usd"] or 0) == 0


# ---------------------------------------------------------------- Anthropic


def test_anthropic_message(hub, key):
    meter = Meter(hub)
    m = ant(hub, key).messages.create(model="claude-haiku-4-5", max_tokens=1024, system="Be terse.", messages=say())
    assert m.model == "claude-haiku-4-5-20251001" and m.stop_reason == "end_turn"
    row = meter.one()
    assert_priced(row, "anthropic", "claude-haiku-4-5-20251001", "messages")
    assert (row["input_tokens"], row["output_tokens"]) == (m.usage.input_tokens, m.usage.output_tokens)


def test_anthropic_stream_final_message(hub, key):
    meter = Meter(hub)
    with ant(hub, key).messages.stream(model="claude-haiku-4-5", max_tokens=500, messages=say("Stream it")) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == final.content[0].text and "Workshop Hub" in text
    row = meter.one()
    assert_priced(row, "anthropic", "claude-haiku-4-5-20251001", "messages", streamed=True)
    assert (row["input_tokens"], row["output_tokens"]) == (final.usage.input_tokens, final.usage.output_tokens)


def test_anthropic_count_tokens_is_free(hub, key):
    c = ant(hub, key)
    meter = Meter(hub)
    counted = c.messages.count_tokens(model="claude-haiku-4-5", system="Be terse.", messages=say())
    assert counted.input_tokens > 0
    row = meter.one()
    assert row["endpoint"] == "count_tokens" and row["status"] == 200 and row["billed_to"] == "none"
    assert row["output_tokens"] == 0
    assert (row["cost_micro_usd"] or 0) == 0
    m = c.messages.create(model="claude-haiku-4-5", max_tokens=1024, system="Be terse.", messages=say())
    assert m.usage.input_tokens == counted.input_tokens
    meter.one()


def test_anthropic_models_paging(hub, key):
    c = ant(hub, key)
    meter = Meter(hub)
    page = c.models.list(limit=2)
    ids, pages = [m.id for m in page.data], 1
    while page.has_next_page():
        page = page.get_next_page()
        ids += [m.id for m in page.data]
        pages += 1
    assert pages >= 3 and len(ids) == len(set(ids))
    rows = meter.new_rows(pages)
    assert all(r["endpoint"] == "list_models" and r["status"] == 200 for r in rows)
    assert all((r["cost_micro_usd"] or 0) == 0 and r["billed_to"] == "none" for r in rows)
    assert ids == [m.id for m in c.models.list(limit=1000).data]
    meter.one()


# ---------------------------------------------------------------- Gemini


def test_gemini_generate_content(hub, key):
    c = gem(hub, key)
    meter = Meter(hub)
    r = c.models.generate_content(model="gemini-2.5-flash", contents="What is the capital of France?")
    u = r.usage_metadata
    assert "Workshop Hub" in r.text
    row = meter.one()
    assert_priced(row, "gemini", "gemini-2.5-flash", "generate_content")
    assert row["input_tokens"] == u.prompt_token_count
    # Gemini bills thinking as output: candidates + thoughts.
    assert row["output_tokens"] == u.candidates_token_count + (u.thoughts_token_count or 0)
    assert row["reasoning_tokens"] == (u.thoughts_token_count or 0)


def test_gemini_generate_content_stream(hub, key):
    c = gem(hub, key)
    meter = Meter(hub)
    chunks = list(c.models.generate_content_stream(model="gemini-2.5-flash", contents="Stream it"))
    assert len(chunks) > 1
    u = chunks[-1].usage_metadata
    row = meter.one()
    assert_priced(row, "gemini", "gemini-2.5-flash", "stream_generate_content", streamed=True)
    assert row["input_tokens"] == u.prompt_token_count
    assert row["output_tokens"] == u.candidates_token_count + (u.thoughts_token_count or 0)
    assert row["reasoning_tokens"] == (u.thoughts_token_count or 0)


def test_gemini_count_tokens_is_free(hub, key):
    c = gem(hub, key)
    meter = Meter(hub)
    counted = c.models.count_tokens(model="gemini-2.5-flash", contents="What is the capital of France?")
    assert counted.total_tokens > 0
    row = meter.one()
    assert row["endpoint"] == "count_tokens" and row["status"] == 200 and row["billed_to"] == "none"
    assert (row["cost_micro_usd"] or 0) == 0 and row["output_tokens"] == 0


def test_gemini_embed_content(hub, key):
    c = gem(hub, key)
    text = "The quick brown fox jumps over the lazy dog, again and again, " * 20
    counted = c.models.count_tokens(model="gemini-embedding-001", contents=text).total_tokens
    meter = Meter(hub)
    r = c.models.embed_content(model="gemini-embedding-001", contents=text)
    assert len(r.embeddings[0].values) == 3072
    row = meter.one()
    assert row["provider"] == "gemini" and row["model"] == "gemini-embedding-001"
    assert row["endpoint"] == "embed_content" and row["status"] == 200 and row["billed_to"] == "credits"
    assert row["output_tokens"] == 0
    # embedContent answers carry no usage: the Hub estimates from what was sent and says so.
    assert row["estimated"] == 1
    assert counted / 2 <= row["input_tokens"] <= counted * 2, (row["input_tokens"], counted)
    assert row["cost_micro_usd"] == expected_cost(row) > 0


def test_gemini_models_list(hub, key):
    c = gem(hub, key)
    meter = Meter(hub)
    names = [m.name for m in c.models.list(config={"page_size": 2})]
    assert "models/gemini-2.5-flash" in names and len(names) == len(set(names)) >= 5
    rows = meter.new_rows(math.ceil(len(names) / 2))
    assert all(r["endpoint"] == "list_models" and r["status"] == 200 for r in rows)
    assert all((r["cost_micro_usd"] or 0) == 0 and r["billed_to"] == "none" for r in rows)


def test_balance_is_the_grant_minus_every_recorded_cost(hub, key):
    c, a, g = oai(hub, key), ant(hub, key), gem(hub, key)
    meter = Meter(hub)
    c.chat.completions.create(model="gpt-4o", messages=say())
    a.messages.create(model="claude-haiku-4-5", max_tokens=200, messages=say())
    g.models.generate_content(model="gemini-2.0-flash", contents="hi")
    rows = meter.new_rows(3)
    assert [r["provider"] for r in rows] == ["openai", "anthropic", "gemini"]
    for r in rows:
        assert r["cost_micro_usd"] == expected_cost(r) > 0
    all_rows = hub.usage_rows()
    assert all(r["billed_to"] in ("credits", "none") for r in all_rows)
    assert all(r["cost_micro_usd"] in (0, None) for r in all_rows if r["billed_to"] == "none")
    assert hub.balance() == GRANT_MICRO_USD - sum(r["cost_micro_usd"] or 0 for r in all_rows)


# ---------------------------------------------------------------- the Hub's own refusals


def openai_code(e):
    return e.value.code


def anthropic_code(e):
    body = e.value.body
    assert body["type"] == "error"
    return body["error"]["details"]["error_code"]


def gemini_reason(e):
    return json.dumps(e.value.details)


def test_bad_app_key_is_refused_in_each_sdk(hub):
    bad = "whk_00000000_" + "x" * 32
    with pytest.raises(openai.AuthenticationError) as e:
        oai(hub, bad).chat.completions.create(model="gpt-4o-mini", messages=say())
    assert e.value.status_code == 401 and openai_code(e) == "invalid_app_key"
    assert "Apps page" in e.value.message
    with pytest.raises(anthropic.AuthenticationError) as e:
        ant(hub, bad).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=say())
    assert e.value.status_code == 401 and anthropic_code(e) == "invalid_app_key"
    g = gem(hub, bad)
    with pytest.raises(genai_errors.ClientError) as e:
        g.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert e.value.code == 401 and "INVALID_APP_KEY" in gemini_reason(e)
    # A real app's id with a wrong secret is refused the same way.
    app = hub.create_app("wrong-secret")
    forged = app["key"][: -4] + ("aaaa" if not app["key"].endswith("aaaa") else "bbbb")
    with pytest.raises(openai.AuthenticationError) as e:
        oai(hub, forged).models.list()
    assert openai_code(e) == "invalid_app_key"
    # A provider key is not an app key.
    with pytest.raises(openai.AuthenticationError) as e:
        oai(hub, OPENAI_KEY).models.list()
    assert openai_code(e) == "invalid_app_key"


def test_locked_hub_refuses_with_hub_locked(hub):
    key = hub.create_app("locked")["key"]
    c, a, g = oai(hub, key), ant(hub, key), gem(hub, key)
    c.models.list()
    hub.call("POST", "/api/v1/lock", expect=200)
    try:
        meter = Meter(hub)
        with pytest.raises(openai.APIStatusError) as e:
            c.chat.completions.create(model="gpt-4o-mini", messages=say())
        assert e.value.status_code == 503 and openai_code(e) == "hub_locked"
        with pytest.raises(anthropic.APIStatusError) as e:
            a.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=say())
        assert e.value.status_code == 503 and anthropic_code(e) == "hub_locked"
        with pytest.raises(genai_errors.ServerError) as e:
            g.models.generate_content(model="gemini-2.5-flash", contents="hi")
        assert e.value.code == 503 and "HUB_LOCKED" in gemini_reason(e)
        meter.nothing()
    finally:
        hub.sign_in()  # unlocks
    assert c.chat.completions.create(model="gpt-4o-mini", messages=say()).choices


def test_disabled_managed_connections_are_revoked_and_come_back(hub):
    key = hub.create_app("revoked")["key"]
    c, a, g = oai(hub, key), ant(hub, key), gem(hub, key)
    try:
        for p in ("openai", "anthropic", "gemini"):
            hub.call("DELETE", f"/api/v1/connections/managed-{p}", expect=204)
            assert hub.connection(f"managed-{p}")["status"] == "disabled"
        meter = Meter(hub)
        with pytest.raises(openai.PermissionDeniedError) as e:
            c.chat.completions.create(model="gpt-4o-mini", messages=say())
        assert e.value.status_code == 403 and openai_code(e) == "connector_revoked"
        with pytest.raises(anthropic.PermissionDeniedError) as e:
            a.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=say())
        assert anthropic_code(e) == "connector_revoked"
        with pytest.raises(genai_errors.ClientError) as e:
            g.models.generate_content(model="gemini-2.5-flash", contents="hi")
        assert e.value.code == 403 and "CONNECTOR_REVOKED" in gemini_reason(e)
        meter.refused("connector_revoked", 3)
    finally:
        for p in ("openai", "anthropic", "gemini"):
            hub.call("POST", f"/api/v1/connections/managed/{p}", expect=200)
    assert c.chat.completions.create(model="gpt-4o-mini", messages=say()).choices
    assert a.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=say()).content
    assert g.models.generate_content(model="gemini-2.5-flash", contents="hi").text


def test_deleted_byok_connection_is_revoked(offline_hub):
    h = offline_hub
    conn = h.add_connection("openai", "Mine", OPENAI_KEY)
    app = h.create_app("byok")
    h.patch_app(app["id"], connections={"openai": conn["id"]})
    c = oai(h, app["key"])
    assert c.chat.completions.create(model="gpt-4o-mini", messages=say()).choices
    h.call("DELETE", f"/api/v1/connections/{conn['id']}", expect=204)
    with pytest.raises(openai.PermissionDeniedError) as e:
        c.chat.completions.create(model="gpt-4o-mini", messages=say())
    assert e.value.status_code == 403 and openai_code(e) == "connector_revoked"


def test_app_rate_limit(hub):
    app = hub.create_app("limited")
    hub.patch_app(app["id"], rpm_limit=1)
    c, a, g = oai(hub, app["key"]), ant(hub, app["key"]), gem(hub, app["key"])
    # The Hub counts in calendar minutes: keep the four calls inside one of them.
    if time.time() % 60 > 55:
        time.sleep(60.5 - time.time() % 60)
    assert c.chat.completions.create(model="gpt-4o-mini", messages=say()).choices
    with pytest.raises(openai.RateLimitError) as e:
        c.chat.completions.create(model="gpt-4o-mini", messages=say())
    assert e.value.status_code == 429 and openai_code(e) == "app_rate_limited"
    retry_after = e.value.response.headers.get("retry-after")
    assert retry_after is not None and 1 <= int(retry_after) <= 60
    with pytest.raises(anthropic.RateLimitError) as e:
        a.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=say())
    assert anthropic_code(e) == "app_rate_limited" and "retry-after" in e.value.response.headers
    with pytest.raises(genai_errors.ClientError) as e:
        g.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert e.value.code == 429 and "APP_RATE_LIMITED" in gemini_reason(e)


def test_app_budget_exceeded(hub):
    app = hub.create_app("budgeted")
    hub.patch_app(app["id"], monthly_budget_micro_usd=1)
    c, a, g = oai(hub, app["key"]), ant(hub, app["key"]), gem(hub, app["key"])
    meter = Meter(hub)
    with pytest.raises(openai.APIStatusError) as e:
        c.chat.completions.create(model="gpt-4o-mini", messages=say())
    assert e.value.status_code == 402 and openai_code(e) == "app_budget_exceeded"
    assert "budget" in e.value.message.lower()
    with pytest.raises(anthropic.APIStatusError) as e:
        a.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=say())
    assert e.value.status_code == 402 and anthropic_code(e) == "app_budget_exceeded"
    with pytest.raises(genai_errors.ClientError) as e:
        g.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert e.value.code == 402 and "APP_BUDGET_EXCEEDED" in gemini_reason(e)
    meter.refused("app_budget_exceeded", 3)


def test_unknown_model_on_managed_is_not_available_and_free(hub):
    key = hub.create_app("unknown-model")["key"]
    meter = Meter(hub)
    with pytest.raises(openai.NotFoundError) as e:
        oai(hub, key).chat.completions.create(model="gpt-9-ultra", messages=say())
    assert e.value.status_code == 404 and openai_code(e) == "model_not_available"
    with pytest.raises(anthropic.NotFoundError) as e:
        ant(hub, key).messages.create(model="claude-foo-1", max_tokens=10, messages=say())
    assert anthropic_code(e) == "model_not_available"
    g = gem(hub, key)
    with pytest.raises(genai_errors.ClientError) as e:
        g.models.generate_content(model="gemini-pro-9", contents="hi")
    assert e.value.code == 404 and "MODEL_NOT_AVAILABLE" in gemini_reason(e)
    rows = meter.refused("model_not_available", 3)
    assert [r["model"] for r in rows] == ["gpt-9-ultra", "claude-foo-1", "gemini-pro-9"]


def test_request_too_large():
    h = HubProcess("--max-body-mib", "1")
    try:
        key = h.create_app("big")["key"]
        meter = Meter(h)
        with pytest.raises(openai.APIStatusError) as e:
            oai(h, key).chat.completions.create(model="gpt-4o-mini", messages=say("x " * 600_000))
        assert e.value.status_code == 413 and openai_code(e) == "request_too_large"
        meter.refused("request_too_large")
        # Just under the limit goes through.
        assert oai(h, key).chat.completions.create(model="gpt-4o-mini", messages=say("x " * 400_000)).choices
    finally:
        h.close()


def test_insufficient_credits_names_the_balance():
    h = HubProcess()
    try:
        key = h.create_app("spender")["key"]
        assert h.balance() == GRANT_MICRO_USD
        meter = Meter(h)
        # claude-opus-4-1: ~187k input tokens at $15/M (~$2.81) + 32,000 output at $75/M ($2.40):
        # the hold is over the $5.00 grant, a real request that fits the 200k context window.
        prompt = "word " * 150_000
        with pytest.raises(anthropic.APIStatusError) as e:
            with ant(h, key).messages.stream(model="claude-opus-4-1", max_tokens=32_000, messages=say(prompt)) as s:
                s.get_final_message()
        assert e.value.status_code == 402 and anthropic_code(e) == "insufficient_credits"
        assert f"balance {dollars(GRANT_MICRO_USD)}" in e.value.message, e.value.message
        assert "Add credits" in e.value.message
        meter.refused("insufficient_credits")
        # Nothing stays held: a small request still goes through.
        assert ant(h, key).messages.create(model="claude-haiku-4-5", max_tokens=50, messages=say()).content
        meter.one()
    finally:
        h.close()


# ---------------------------------------------------------------- provider errors pass through


@pytest.mark.parametrize(
    "marker,exc,code,title",
    [
        ("invalid", openai.AuthenticationError, "invalid_api_key", "Invalid API key"),
        ("noquota", openai.RateLimitError, "insufficient_quota", "Insufficient quota"),
    ],
)
def test_provider_errors_pass_through_and_mark_the_connection(offline_hub, marker, exc, code, title):
    h = offline_hub
    # Added with a good key (verified, no error), then the key is replaced by a failing one, so
    # only the app's call can put the error on the connection.
    conn = h.add_connection("openai", f"Soon {marker}", OPENAI_KEY)
    assert conn["last_error"] is None
    bad_key = f"sk-proj-test-{marker}-" + "Q" * 40
    h.call("PATCH", f"/api/v1/connections/{conn['id']}", {"api_key": bad_key}, expect=200)
    assert h.connection(conn["id"])["last_error"] is None
    app = h.create_app(f"victim-{marker}")
    h.patch_app(app["id"], connections={"openai": conn["id"]})
    meter = Meter(h)
    with pytest.raises(exc) as e:
        oai(h, app["key"]).chat.completions.create(model="gpt-4o-mini", messages=say())
    assert openai_code(e) == code
    # Unchanged: the same body the emulator gives that key directly.
    direct = httpx.post(
        f"{h.base}/emulator/openai/v1/chat/completions",
        headers={"authorization": f"Bearer {bad_key}"},
        json={"model": "gpt-4o-mini", "messages": say()},
    )
    assert e.value.status_code == direct.status_code
    assert e.value.response.json() == direct.json()
    row = meter.one()
    assert row["status"] == direct.status_code and row["billed_to"] == "provider"
    deadline = time.monotonic() + 5
    while h.connection(conn["id"])["last_error"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert h.connection(conn["id"])["last_error"]["title"] == title


# ---------------------------------------------------------------- keys stay where they belong


class Recorder:
    """An httpx client that keeps every response header and body byte the app received."""

    def __init__(self):
        self.seen = []
        self.client = httpx.Client(timeout=30, event_hooks={"response": [self._keep]})

    def _keep(self, response):
        response.read()
        self.seen.append(repr(response.headers.multi_items()) + response.text)

    def everything(self):
        return "\n".join(self.seen)


@pytest.fixture(scope="module")
def upstream():
    emu = EmulatorProcess()
    yield emu
    emu.close()


@pytest.fixture(scope="module")
def byok_hub(upstream):
    h = HubProcess(
        "--openai-base-url", upstream.url,
        "--anthropic-base-url", upstream.url,
        "--gemini-base-url", upstream.url,
    )
    yield h
    h.close()


def test_provider_key_never_reaches_the_app_and_app_key_never_upstream(byok_hub, upstream):
    h = byok_hub
    conns = {
        "openai": h.add_connection("openai", "Mine", OPENAI_KEY),
        "anthropic": h.add_connection("anthropic", "Mine", ANTHROPIC_KEY),
        "gemini": h.add_connection("gemini", "Mine", GEMINI_KEY),
    }
    for conn in conns.values():
        assert conn["status"] == "active" and conn["last_error"] is None, conn
        assert conn["kind"] == "byok" and "key" not in conn
    app = h.create_app("sealed")
    h.patch_app(app["id"], connections={p: c["id"] for p, c in conns.items()})
    key = app["key"]
    rec = Recorder()

    c = oai(h, key, http_client=rec.client)
    assert c.chat.completions.create(model="gpt-4o-mini", messages=say()).choices
    list(c.chat.completions.create(model="gpt-4o-mini", messages=say(), stream=True))
    list(c.models.list())
    a = ant(h, key, http_client=rec.client)
    assert a.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=say()).content
    with a.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=say()) as s:
        s.get_final_message()
    g = gem(h, key, httpx_client=rec.client)
    assert g.models.generate_content(model="gemini-2.5-flash", contents="hi").text
    list(g.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    # Gemini's other way to pass the key: ?key= (accepted, never forwarded).
    r = rec.client.post(
        f"{h.base}/gemini/v1beta/models/gemini-2.5-flash:generateContent",
        params={"key": key},
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    )
    assert r.status_code == 200, r.text
    # The management API never shows a provider key either.
    for conn in conns.values():
        rec.seen.append(h.call("GET", f"/api/v1/connections/{conn['id']}", expect=200).text)
    rec.seen.append(h.call("GET", "/api/v1/connections", expect=200).text)

    seen = rec.everything()
    assert len(rec.seen) >= 10
    for provider_key in (OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY):
        assert provider_key not in seen
        assert provider_key[12:32] not in seen  # not even a recognisable piece

    received = upstream.received()
    assert {r["provider"] for r in received} == {"openai", "anthropic", "gemini"}
    dumped = json.dumps(received)
    secret = key.split("_")[2]
    assert "whk_" not in dumped and secret not in dumped
    expected_auth = {
        "openai": ("authorization", f"Bearer {OPENAI_KEY}"),
        "anthropic": ("x-api-key", ANTHROPIC_KEY),
        "gemini": ("x-goog-api-key", GEMINI_KEY),
    }
    for r in received:
        name, value = expected_auth[r["provider"]]
        headers = [(n.lower(), v) for n, v in r["headers"]]
        assert (name, value) in headers, (r["path"], headers)
        holding = [n for n, v in headers if any(k in v for k in (OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY))]
        assert holding == [name], (r["path"], holding)
        assert "key=" not in (r["query"] or ""), r
    # The ?key= call arrived with the stored key in the header instead.
    gem_calls = [r for r in received if r["provider"] == "gemini" and ":generateContent" in r["path"]]
    assert len(gem_calls) >= 2


def test_streaming_is_not_buffered():
    emu = EmulatorProcess("--tokens-per-second", "20")
    h = HubProcess("--openai-base-url", emu.url)
    try:
        conn = h.add_connection("openai", "Paced", OPENAI_KEY)
        app = h.create_app("paced")
        h.patch_app(app["id"], connections={"openai": conn["id"]})
        c = oai(h, app["key"])
        start = time.monotonic()
        first = None
        pieces = 0
        for ch in c.chat.completions.create(
            model="gpt-4o-mini", messages=say(), max_completion_tokens=60, stream=True
        ):
            if ch.choices and ch.choices[0].delta.content:
                pieces += 1
                if first is None:
                    first = time.monotonic() - start
        total = time.monotonic() - start
        assert pieces >= 30
        assert total >= 1.5, total
        assert first is not None and first < 0.4 * total, (first, total)
        (row,) = h.wait_usage(1)
        assert row["streamed"] == 1 and row["output_tokens"] == pieces
        assert row["ttfb_ms"] < 0.4 * row["latency_ms"], row
    finally:
        h.close()
        emu.close()
