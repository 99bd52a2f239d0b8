"""The emulator as the official SDKs see it: openai, anthropic and google-genai."""

import json
import re
import struct
import time

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

try:  # the SDKs here ship httpx under the name httpx2
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

OPENAI_KEY = "sk-proj-test" + "A" * 40 + "T3BlbkFJ" + "B" * 40
ANTHROPIC_KEY = "sk-ant-api03-test" + "x" * 80 + "AA"
GEMINI_KEY = "AIzaTest" + "y" * 31

TOKEN = re.compile(r"[^\W_]+|[^\w\s]|_")


def tokens(text):
    """The emulator's documented tokenizer: alphanumeric runs and single other characters."""
    return len(TOKEN.findall(text))


# ---------------------------------------------------------------- OpenAI


def oai(url, key=OPENAI_KEY, **kw):
    return openai.OpenAI(api_key=key, base_url=f"{url}/v1", max_retries=0, **kw)


def test_openai_models_list_and_retrieve(emulator_url):
    c = oai(emulator_url)
    ids = [m.id for m in c.models.list()]
    assert "gpt-4o-mini" in ids and "text-embedding-3-small" in ids
    assert c.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError) as e:
        c.models.retrieve("gpt-9-ultra")
    assert e.value.code == "model_not_found"


def test_openai_chat_usage_and_determinism(emulator_url):
    c = oai(emulator_url)
    msgs = [{"role": "user", "content": "Tell me about the Hub."}]
    a = c.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    b = c.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    assert a.model == "gpt-4o-mini-2024-07-18"
    text = a.choices[0].message.content
    assert "Workshop Hub offline emulator" in text
    assert text == b.choices[0].message.content
    assert a.usage.completion_tokens == tokens(text) == b.usage.completion_tokens
    assert a.usage.total_tokens == a.usage.prompt_tokens + a.usage.completion_tokens
    assert a.choices[0].finish_reason == "stop"
    longer = c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Tell me about the Hub. " * 20}]
    )
    assert longer.usage.prompt_tokens > a.usage.prompt_tokens + 50


def test_openai_max_tokens_and_n(emulator_url):
    c = oai(emulator_url)
    r = c.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=7, n=3
    )
    assert len(r.choices) == 3
    assert all(ch.finish_reason == "length" for ch in r.choices)
    assert all(tokens(ch.message.content) == 7 for ch in r.choices)
    assert r.usage.completion_tokens == 21


def test_openai_json_modes(emulator_url):
    c = oai(emulator_url)
    r = c.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Reply in JSON"}],
        response_format={"type": "json_object"},
    )
    assert "answer" in json.loads(r.choices[0].message.content)
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    r = c.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Facts about Lisbon please"}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}},
    )
    data = json.loads(r.choices[0].message.content)
    assert isinstance(data["city"], str) and isinstance(data["population"], int)


def test_openai_stream_with_usage(emulator_url):
    c = oai(emulator_url)
    chunks = list(
        c.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "stream please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == tokens(text)
    assert all(ch.usage is None for ch in chunks[:-1])
    assert len({ch.id for ch in chunks}) == 1
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_openai_stream_without_usage_has_no_usage_key(emulator_url):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    r = httpx.post(f"{emulator_url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {OPENAI_KEY}"})
    frames = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    assert all("usage" not in json.loads(f) for f in frames[:-1])


def test_openai_responses_plain_and_stream(emulator_url):
    c = oai(emulator_url)
    r = c.responses.create(model="gpt-4.1", input="Tell me a bedtime story.", instructions="Be brief.")
    assert r.model == "gpt-4.1-2025-04-14" and r.status == "completed"
    assert "Workshop Hub" in r.output_text
    assert r.usage.output_tokens == tokens(r.output_text)
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    events = list(c.responses.create(model="gpt-4.1", input="Tell me a bedtime story.", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == events[-1].response.output_text
    assert events[-1].response.usage.output_tokens == tokens(deltas)
    with c.responses.stream(model="gpt-4.1", input="again") as s:
        final = s.get_final_response()
    assert final.usage.output_tokens == tokens(final.output_text)


def test_openai_reasoning_usage(emulator_url):
    c = oai(emulator_url)
    r = c.chat.completions.create(
        model="gpt-5-mini", messages=[{"role": "user", "content": "think"}], reasoning_effort="high"
    )
    reasoning = r.usage.completion_tokens_details.reasoning_tokens
    assert reasoning > 0
    assert r.usage.completion_tokens == reasoning + tokens(r.choices[0].message.content)
    resp = c.responses.create(model="o4-mini", input="think", reasoning={"effort": "low"})
    assert resp.usage.output_tokens_details.reasoning_tokens > 0
    assert resp.usage.output_tokens == resp.usage.output_tokens_details.reasoning_tokens + tokens(resp.output_text)
    plain = c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert plain.usage.completion_tokens_details.reasoning_tokens == 0


def test_openai_embeddings(emulator_url):
    c = oai(emulator_url)
    default = c.embeddings.create(model="text-embedding-3-small", input="The food was delicious")
    assert len(default.data[0].embedding) == 1536
    floats = c.embeddings.create(model="text-embedding-3-small", input="The food was delicious", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(default.data[0].embedding, abs=1e-6)
    small = c.embeddings.create(model="text-embedding-3-large", input=["a", "b"], dimensions=256)
    assert [len(d.embedding) for d in small.data] == [256, 256]
    assert small.data[0].embedding != small.data[1].embedding
    assert len(c.embeddings.create(model="text-embedding-3-large", input="x").data[0].embedding) == 3072
    assert default.usage.prompt_tokens == tokens("The food was delicious")
    raw = httpx.post(
        f"{emulator_url}/v1/embeddings",
        json={"model": "text-embedding-3-small", "input": "hi", "encoding_format": "base64", "dimensions": 4},
        headers={"authorization": f"Bearer {OPENAI_KEY}"},
    ).json()
    import base64

    assert len(struct.unpack("<4f", base64.b64decode(raw["data"][0]["embedding"]))) == 4


def test_openai_key_errors(emulator_url):
    with pytest.raises(openai.AuthenticationError) as e:
        oai(emulator_url, key="sk-proj-invalid-" + "z" * 30).models.list()
    assert e.value.code == "invalid_api_key"
    assert "sk-proj-" in e.value.message and "****" in e.value.message and "z" * 30 not in e.value.message
    with pytest.raises(openai.AuthenticationError):
        oai(emulator_url, key="AIzaWrongProvider").models.list()
    with pytest.raises(openai.RateLimitError) as e:
        oai(emulator_url, key="sk-proj-noquota-1").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.code == "insufficient_quota"
    assert e.value.response.headers["x-should-retry"] == "false"
    r = httpx.get(f"{emulator_url}/v1/models")
    assert r.status_code == 401 and r.json()["error"]["code"] is None


@pytest.mark.parametrize(
    "fault,exc",
    [
        ("rate_limit", openai.RateLimitError),
        ("insufficient_quota", openai.RateLimitError),
        ("server_error", openai.InternalServerError),
        ("overloaded", openai.InternalServerError),
    ],
)
def test_openai_faults(emulator_url, fault, exc):
    c = oai(emulator_url)
    with pytest.raises(exc) as e:
        c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], extra_headers={"x-emulator-fault": fault}
        )
    if fault == "rate_limit":
        assert e.value.response.headers["retry-after"] == "1"
        assert "x-ratelimit-remaining-requests" in e.value.response.headers


def test_openai_unknown_model(emulator_url):
    with pytest.raises(openai.NotFoundError) as e:
        oai(emulator_url).chat.completions.create(model="gpt-5-foo", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"


def test_openai_dropped_stream_raises(emulator_url):
    c = oai(emulator_url)
    got = []
    with pytest.raises((httpx.RemoteProtocolError, openai.APIError)):
        for ch in c.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            extra_headers={"x-emulator-fault": "drop_mid_stream"},
        ):
            got.append(ch)
    assert 0 < len(got) < 10


def test_openai_timeout_fault(emulator_url):
    c = oai(emulator_url, timeout=1.0)
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        c.models.list(extra_headers={"x-emulator-fault": "timeout"})
    assert time.monotonic() - start < 5


def test_received_shows_the_auth_header(emulator_url):
    oai(emulator_url).models.list(extra_headers={"x-marker": "seen-1"})
    received = httpx.get(f"{emulator_url}/__emulator/received").json()
    mine = [r for r in received if dict(r["headers"]).get("x-marker") == "seen-1"]
    assert mine and dict(mine[-1]["headers"])["authorization"] == f"Bearer {OPENAI_KEY}"
    assert mine[-1]["provider"] == "openai"


# ---------------------------------------------------------------- Anthropic


def ant(url, key=ANTHROPIC_KEY, **kw):
    return anthropic.Anthropic(api_key=key, base_url=url, max_retries=0, **kw)


def test_anthropic_models_paging(emulator_url):
    c = ant(emulator_url)
    everything = c.models.list(limit=1000).data
    paged = [m.id for m in c.models.list(limit=2)]
    assert paged == [m.id for m in everything]
    assert len(paged) == len(set(paged)) >= 6
    assert paged[0] == "claude-opus-4-5-20251101"
    created = [m.created_at for m in everything]
    assert created == sorted(created, reverse=True)
    first = c.models.list(limit=2)
    assert first.has_more and first.last_id == first.data[-1].id
    back = c.models.list(limit=2, before_id=paged[3])
    assert [m.id for m in back.data] == paged[1:3]
    assert c.models.retrieve("claude-sonnet-4-5").id == "claude-sonnet-4-5-20250929"


def test_anthropic_message_and_count_tokens(emulator_url):
    c = ant(emulator_url)
    msgs = [{"role": "user", "content": "Hello, Claude"}]
    m = c.messages.create(model="claude-sonnet-4-5", max_tokens=1024, system="Be terse.", messages=msgs)
    assert m.model == "claude-sonnet-4-5-20250929"
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens == tokens(m.content[0].text)
    counted = c.messages.count_tokens(model="claude-sonnet-4-5", system="Be terse.", messages=msgs)
    assert counted.input_tokens == m.usage.input_tokens
    again = c.messages.create(model="claude-sonnet-4-5", max_tokens=1024, system="Be terse.", messages=msgs)
    assert again.content[0].text == m.content[0].text
    cut = c.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=msgs)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 5


def test_anthropic_stream(emulator_url):
    c = ant(emulator_url)
    with c.messages.stream(
        model="claude-haiku-4-5", max_tokens=500, messages=[{"role": "user", "content": "Stream it"}]
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == final.content[0].text and "Workshop Hub" in text
    assert final.usage.output_tokens == tokens(text)
    assert final.usage.input_tokens > 0
    events = [e.type for e in c.messages.create(
        model="claude-haiku-4-5", max_tokens=500, messages=[{"role": "user", "content": "x"}], stream=True
    )]
    assert events[:2] == ["message_start", "content_block_start"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_anthropic_thinking(emulator_url):
    c = ant(emulator_url)
    kw = dict(
        model="claude-sonnet-4-5",
        max_tokens=4000,
        thinking={"type": "enabled", "budget_tokens": 2000},
        messages=[{"role": "user", "content": "Think first"}],
    )
    m = c.messages.create(**kw)
    assert [b.type for b in m.content] == ["thinking", "text"]
    assert m.content[0].signature
    assert m.usage.output_tokens == tokens(m.content[0].thinking) + tokens(m.content[1].text)
    with c.messages.stream(**kw) as s:
        final = s.get_final_message()
    assert final.content[0].thinking == m.content[0].thinking
    assert final.content[0].signature == m.content[0].signature
    assert final.usage.output_tokens == m.usage.output_tokens


def test_anthropic_tool_use(emulator_url):
    c = ant(emulator_url)
    tool = {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    kw = dict(
        model="claude-sonnet-4-5",
        max_tokens=500,
        tools=[tool],
        messages=[{"role": "user", "content": "What is the weather in Paris? Use the get_weather tool."}],
    )
    m = c.messages.create(**kw)
    assert m.stop_reason == "tool_use"
    call = m.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather" and call.input == {"city": "Paris"}
    with c.messages.stream(**kw) as s:
        final = s.get_final_message()
    assert final.content[-1].input == {"city": "Paris"}
    assert final.usage.output_tokens == m.usage.output_tokens


def test_anthropic_auth_styles(emulator_url):
    ant(emulator_url).models.list(limit=1, extra_headers={"x-marker": "ant-1"})
    anthropic.Anthropic(auth_token=ANTHROPIC_KEY, base_url=emulator_url, max_retries=0).models.list(
        limit=1, extra_headers={"x-marker": "ant-2"}
    )
    received = httpx.get(f"{emulator_url}/__emulator/received").json()
    by_marker = {dict(r["headers"]).get("x-marker"): dict(r["headers"]) for r in received}
    first, second = by_marker["ant-1"], by_marker["ant-2"]
    assert first.get("x-api-key") == ANTHROPIC_KEY or first.get("authorization") == f"Bearer {ANTHROPIC_KEY}"
    assert second["authorization"] == f"Bearer {ANTHROPIC_KEY}"
    assert "anthropic-version" in first


def test_anthropic_errors(emulator_url):
    with pytest.raises(anthropic.AuthenticationError):
        ant(emulator_url, key="sk-ant-api03-revoked-1").models.list()
    with pytest.raises(anthropic.AuthenticationError):
        ant(emulator_url, key="sk-proj-wrong-provider").models.list()
    with pytest.raises(anthropic.BadRequestError) as e:
        ant(emulator_url, key="sk-ant-api03-noquota").messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert "credit balance is too low" in e.value.message
    assert e.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(anthropic.NotFoundError):
        ant(emulator_url).messages.create(model="claude-foo-1", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    r = httpx.post(
        f"{emulator_url}/v1/messages",
        headers={"x-api-key": ANTHROPIC_KEY},
        json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.get(f"{emulator_url}/v1/models", headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 401 and r.json()["type"] == "error"


@pytest.mark.parametrize(
    "fault,exc",
    [
        ("rate_limit", anthropic.RateLimitError),
        ("overloaded", anthropic.OverloadedError),
        ("server_error", anthropic.InternalServerError),
        ("insufficient_quota", anthropic.BadRequestError),
    ],
)
def test_anthropic_faults(emulator_url, fault, exc):
    with pytest.raises(exc) as e:
        ant(emulator_url).messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-emulator-fault": fault},
        )
    if fault == "overloaded":
        assert e.value.status_code == 529
    if fault == "rate_limit":
        assert "anthropic-ratelimit-requests-remaining" in e.value.response.headers


def test_anthropic_dropped_stream_raises(emulator_url):
    c = ant(emulator_url)
    with pytest.raises((httpx.RemoteProtocolError, anthropic.APIError)):
        with c.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=500,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-emulator-fault": "drop_mid_stream"},
        ) as s:
            s.get_final_message()


# ---------------------------------------------------------------- Gemini


def gem(url, key=GEMINI_KEY, headers=None, api_version=None):
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(base_url=f"{url}/", headers=headers, api_version=api_version),
    )


def test_gemini_models_paging(emulator_url):
    c = gem(emulator_url)
    names = [m.name for m in c.models.list(config={"page_size": 2})]
    assert len(names) == len(set(names)) >= 5
    assert "models/gemini-2.5-flash" in names
    assert names == [m.name for m in c.models.list(config={"page_size": 100})]
    one = c.models.get(model="gemini-2.5-flash")
    assert one.name == "models/gemini-2.5-flash" and one.input_token_limit > 0
    r = httpx.get(f"{emulator_url}/v1beta/models", params={"pageSize": 100}, headers={"x-goog-api-key": GEMINI_KEY})
    assert "nextPageToken" not in r.json()


@pytest.mark.parametrize("version", [None, "v1beta"])
def test_gemini_generate(emulator_url, version):
    c = gem(emulator_url, api_version=version)
    r = c.models.generate_content(model="gemini-2.5-flash", contents="What is the capital of France?")
    u = r.usage_metadata
    assert "Workshop Hub offline emulator" in r.text
    assert r.model_version == "gemini-2.5-flash" and r.response_id
    assert u.candidates_token_count == tokens(r.text)
    assert u.thoughts_token_count and u.thoughts_token_count > 0
    assert u.total_token_count == u.prompt_token_count + u.candidates_token_count + u.thoughts_token_count
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    counted = c.models.count_tokens(model="gemini-2.5-flash", contents="What is the capital of France?")
    assert counted.total_tokens == u.prompt_token_count


def test_gemini_thinking_off_and_max_tokens(emulator_url):
    c = gem(emulator_url)
    r = c.models.generate_content(
        model="models/gemini-2.5-flash",
        contents="hi",
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=0), max_output_tokens=6),
    )
    assert r.usage_metadata.thoughts_token_count is None
    assert r.usage_metadata.candidates_token_count == 6
    assert r.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    r = c.models.generate_content(model="gemini-2.0-flash", contents="hi")
    assert r.usage_metadata.thoughts_token_count is None


def test_gemini_stream_running_totals(emulator_url):
    c = gem(emulator_url)
    chunks = list(c.models.generate_content_stream(model="gemini-2.5-flash", contents="Stream it"))
    assert len(chunks) > 1
    counts = [ch.usage_metadata.candidates_token_count for ch in chunks]
    assert counts == sorted(counts)
    text = "".join(ch.text for ch in chunks)
    assert counts[-1] == tokens(text)
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert all(ch.candidates[0].finish_reason is None for ch in chunks[:-1])
    last = chunks[-1].usage_metadata
    assert last.total_token_count == last.prompt_token_count + last.candidates_token_count + last.thoughts_token_count


def test_gemini_json_output(emulator_url):
    c = gem(emulator_url)
    r = c.models.generate_content(
        model="gemini-2.5-flash",
        contents="Facts about Rome",
        config=types.GenerateContentConfig(
            response_mime_type="application/json",
            response_schema={"type": "OBJECT", "properties": {"city": {"type": "STRING"}}},
        ),
    )
    assert isinstance(json.loads(r.text)["city"], str)


def test_gemini_embeddings(emulator_url):
    c = gem(emulator_url)
    r = c.models.embed_content(model="gemini-embedding-001", contents="hello world")
    assert len(r.embeddings[0].values) == 3072
    r2 = c.models.embed_content(
        model="gemini-embedding-001",
        contents=["hello world", "bye"],
        config=types.EmbedContentConfig(output_dimensionality=128),
    )
    assert [len(e.values) for e in r2.embeddings] == [128, 128]
    assert c.models.embed_content(model="gemini-embedding-001", contents="hello world").embeddings[0].values == r.embeddings[0].values
    raw = httpx.post(
        f"{emulator_url}/v1beta/models/gemini-embedding-001:embedContent",
        headers={"x-goog-api-key": GEMINI_KEY},
        json={"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 8},
    )
    assert len(raw.json()["embedding"]["values"]) == 8


def test_gemini_key_in_query_and_missing(emulator_url):
    path = f"{emulator_url}/v1beta/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert httpx.post(path, params={"key": GEMINI_KEY}, json=body).status_code == 200
    r = httpx.post(path, json=body)
    assert r.status_code == 403 and r.json()["error"]["status"] == "PERMISSION_DENIED"


def test_gemini_errors(emulator_url):
    # Keep each client in a variable: a google-genai Client closes its HTTP client when collected.
    invalid = gem(emulator_url, key="AIzaInvalidKey")
    with pytest.raises(genai_errors.ClientError) as e:
        invalid.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert e.value.code == 400 and "API_KEY_INVALID" in json.dumps(e.value.details)
    foreign = gem(emulator_url, key="sk-proj-not-gemini")
    with pytest.raises(genai_errors.ClientError) as e:
        foreign.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert e.value.code == 400
    broke = gem(emulator_url, key="AIzaNoQuota-noquota")
    with pytest.raises(genai_errors.ClientError) as e:
        broke.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert e.value.code == 429 and e.value.status == "RESOURCE_EXHAUSTED"
    good = gem(emulator_url)
    with pytest.raises(genai_errors.ClientError) as e:
        good.models.generate_content(model="gemini-pro-9", contents="x")
    assert e.value.code == 404


@pytest.mark.parametrize(
    "fault,exc,code",
    [
        ("rate_limit", genai_errors.ClientError, 429),
        ("insufficient_quota", genai_errors.ClientError, 429),
        ("overloaded", genai_errors.ServerError, 503),
        ("server_error", genai_errors.ServerError, 500),
    ],
)
def test_gemini_faults(emulator_url, fault, exc, code):
    c = gem(emulator_url, headers={"x-emulator-fault": fault})
    with pytest.raises(exc) as e:
        c.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert e.value.code == code


def test_gemini_dropped_stream_raises(emulator_url):
    c = gem(emulator_url, headers={"x-emulator-fault": "drop_mid_stream"})
    got = []
    with pytest.raises(Exception) as e:
        for ch in c.models.generate_content_stream(model="gemini-2.5-flash", contents="x"):
            got.append(ch)
    assert not isinstance(e.value, AssertionError)
    assert len(got) < 10


# ---------------------------------------------------------------- timing


def test_latency_and_pacing(paced_emulator_url):
    c = oai(paced_emulator_url)
    start = time.monotonic()
    c.models.list()
    assert time.monotonic() - start >= 0.2
    start = time.monotonic()
    chunks = list(c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], max_completion_tokens=10, stream=True
    ))
    elapsed = time.monotonic() - start
    assert len(chunks) >= 10
    assert elapsed >= 0.2 + 10 / 50 * 0.9


def test_slow_fault_paces_events(emulator_url):
    c = oai(emulator_url)
    start = time.monotonic()
    list(c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], max_completion_tokens=5, stream=True,
        extra_headers={"x-emulator-fault": "slow"},
    ))
    assert time.monotonic() - start >= 0.5


# ---------------------------------------------------------------- stop sequences and raw JSON settings


def test_stop_sequences_cut_the_answer_in_each_sdk(emulator_url):
    ask = [{"role": "user", "content": "Say something."}]
    plain = oai(emulator_url).chat.completions.create(model="gpt-4o-mini", messages=ask)
    full = plain.choices[0].message.content
    assert "offline" in full
    cut = oai(emulator_url).chat.completions.create(model="gpt-4o-mini", messages=ask, stop=["offline", "zzz"])
    assert cut.choices[0].message.content == full[: full.index("offline")]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens == tokens(cut.choices[0].message.content)
    with pytest.raises(openai.BadRequestError):
        oai(emulator_url).chat.completions.create(model="o4-mini", messages=ask, stop=["x"])

    m = ant(emulator_url).messages.create(
        model="claude-haiku-4-5", max_tokens=200, messages=ask, stop_sequences=["offline"]
    )
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == "offline"
    assert "offline" not in m.content[0].text
    with ant(emulator_url).messages.stream(
        model="claude-haiku-4-5", max_tokens=200, messages=ask, stop_sequences=["offline"]
    ) as s:
        final = s.get_final_message()
    assert final.stop_sequence == "offline" and final.content[0].text == m.content[0].text

    g = gem(emulator_url)  # kept in a variable: the client closes its HTTP client when collected
    r = g.models.generate_content(
        model="gemini-2.0-flash", contents="Say something.", config=types.GenerateContentConfig(stop_sequences=["offline"])
    )
    assert "offline" not in r.text and r.text.startswith("Hello from the Workshop Hub")
    assert r.candidates[0].finish_reason == types.FinishReason.STOP


def test_gemini_accepts_snake_case_generation_config(emulator_url):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "rank": {"type": "integer", "minimum": 3}}}
    body = {
        "contents": [{"role": "user", "parts": [{"text": "Facts about Rome"}]}],
        "generation_config": {
            "response_mime_type": "application/json",
            "response_json_schema": schema,
            "max_output_tokens": 100,
            "thinking_config": {"thinking_budget": 0},
        },
    }
    r = httpx.post(
        f"{emulator_url}/v1beta/models/gemini-2.5-flash:generateContent",
        json=body,
        headers={"x-goog-api-key": GEMINI_KEY},
    )
    assert r.status_code == 200
    assert json.loads(r.json()["candidates"][0]["content"]["parts"][0]["text"]) == {"city": "Rome", "rank": 42}
    body["generation_config"]["max_output_tokens"] = 3
    r = httpx.post(
        f"{emulator_url}/v1beta/models/gemini-2.5-flash:generateContent",
        json=body,
        headers={"x-goog-api-key": GEMINI_KEY},
    )
    assert r.json()["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert r.json()["usageMetadata"]["candidatesTokenCount"] == 3


def test_gemini_cached_contents_lifecycle(emulator_url):
    c = gem(emulator_url)
    document = types.Content(role="user", parts=[types.Part(text="The Workshop Hub manual says hello. " * 300)])
    with pytest.raises(genai_errors.ClientError) as e:
        c.caches.create(model="gemini-2.5-flash", config=types.CreateCachedContentConfig(contents=["too short"]))
    assert e.value.code == 400 and "too small" in e.value.message
    cache = c.caches.create(
        model="gemini-2.5-flash",
        config=types.CreateCachedContentConfig(contents=[document], display_name="manual", ttl="300s"),
    )
    assert cache.name.startswith("cachedContents/") and cache.display_name == "manual"
    assert cache.model == "models/gemini-2.5-flash"
    tokens = cache.usage_metadata.total_token_count
    assert tokens >= 1024
    assert 290 <= (cache.expire_time - cache.create_time).total_seconds() <= 300
    assert c.caches.get(name=cache.name).name == cache.name
    assert cache.name in [x.name for x in c.caches.list()]
    r = c.models.generate_content(
        model="gemini-2.5-flash",
        contents="What does it say?",
        config=types.GenerateContentConfig(cached_content=cache.name),
    )
    assert r.usage_metadata.cached_content_token_count == tokens
    assert r.usage_metadata.prompt_token_count > tokens
    updated = c.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="7200s"))
    assert (updated.expire_time - cache.create_time).total_seconds() > 7000
    c.caches.delete(name=cache.name)
    with pytest.raises(genai_errors.ClientError) as e:
        c.caches.get(name=cache.name)
    assert e.value.code == 404


# ---------------------------------------------------------------- Responses state


def test_openai_responses_are_stored_chained_and_deleted(emulator_url):
    c = oai(emulator_url)
    tool = {"type": "function", "name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    first = c.responses.create(model="gpt-4o-mini", input="What is the weather in Oslo?", tools=[tool],
                               tool_choice="required", instructions="Be brief.")
    assert first.store is True and first.tool_choice == "required" and first.tools[0].name == "get_weather"
    call = first.output[0]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Oslo"}
    assert c.responses.retrieve(first.id).output[0].call_id == call.call_id
    items = c.responses.input_items.list(first.id)
    assert [i.role for i in items.data] == ["user"]
    # Only the tool output is sent: the call and the question come from the stored response.
    second = c.responses.create(
        model="gpt-4o-mini",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "{\"temp_c\": 4}"}],
        tools=[tool],
    )
    assert second.previous_response_id == first.id
    assert '"temp_c": 4' in second.output_text
    assert second.usage.input_tokens > first.usage.input_tokens
    c.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError):
        c.responses.create(model="gpt-4o-mini", previous_response_id=first.id, input="again")
    unstored = c.responses.create(model="gpt-4o-mini", input="hi", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(unstored.id)


def test_openai_reasoning_summary_whole_and_streamed(emulator_url):
    c = oai(emulator_url)
    kw = dict(model="o4-mini", input="Plan a trip to Rome.", reasoning={"effort": "low", "summary": "auto"})
    r = c.responses.create(**kw)
    reasoning = r.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary[0].type == "summary_text"
    assert reasoning.summary[0].text and r.reasoning.summary == "auto" and r.reasoning.effort == "low"
    with c.responses.stream(**kw) as s:
        events = list(s)
        final = s.get_final_response()
    deltas = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert deltas == reasoning.summary[0].text == final.output[0].summary[0].text
    assert "response.reasoning_summary_part.done" in [e.type for e in events]
    plain = c.responses.create(model="o4-mini", input="Plan a trip to Rome.")
    assert plain.output[0].summary == []


# ---------------------------------------------------------------- errors after a 200, headers, params

MID = {"x-emulator-fault": "error_mid_stream"}


def test_error_mid_stream_reaches_each_sdk(emulator_url):
    c = oai(emulator_url)
    with pytest.raises(openai.APIError) as e:
        for _ in c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers=MID
        ):
            pass
    assert "overloaded" in str(e.value).lower()
    events = list(c.responses.create(model="gpt-4o-mini", input="hi", stream=True, extra_headers=MID))
    assert events[-1].type == "error" and events[-1].code == "server_is_overloaded"
    assert events[-1].sequence_number == len(events) - 1
    with pytest.raises(anthropic.APIStatusError) as e:
        with ant(emulator_url).messages.stream(
            model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}], extra_headers=MID
        ) as s:
            s.get_final_message()
    assert e.value.body["error"]["type"] == "overloaded_error"
    g = gem(emulator_url, headers=MID)
    with pytest.raises(genai_errors.APIError) as e:
        list(g.models.generate_content_stream(model="gemini-2.5-flash", contents="hi " * 40))
    assert e.value.code == 503
    with pytest.raises(openai.InternalServerError):  # a whole-body request just gets the error
        c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], extra_headers=MID)


def test_successes_carry_rate_limit_headers(emulator_url):
    r = oai(emulator_url).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert r.headers["x-ratelimit-remaining-requests"] == "499"
    assert r.headers["x-ratelimit-limit-tokens"] == "30000"
    m = ant(emulator_url).messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert m.headers["anthropic-ratelimit-requests-remaining"] == "49"
    assert m.headers["anthropic-ratelimit-output-tokens-reset"].endswith("Z")


def test_bad_combinations_are_refused_naming_the_param(emulator_url):
    c = oai(emulator_url)
    ask = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="o4-mini", messages=ask, temperature=0.2)
    assert e.value.param == "temperature"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="gpt-4o-mini", messages=ask, tool_choice="required")
    assert e.value.param == "tool_choice"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="gpt-4o-mini", messages=ask, stop=["a", "b", "c", "d", "e"])
    assert e.value.param == "stop"
    with pytest.raises(anthropic.BadRequestError) as e:
        ant(emulator_url).messages.create(
            model="claude-3-5-haiku-latest",
            max_tokens=4000,
            messages=ask,
            thinking={"type": "enabled", "budget_tokens": 2000},
        )
    assert e.value.body["error"]["message"].startswith("thinking:")
    g = gem(emulator_url)
    with pytest.raises(genai_errors.ClientError) as e:
        g.models.generate_content(
            model="gemini-2.0-flash",
            contents="hi",
            config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=100)),
        )
    violation = e.value.details["error"]["details"][0]["fieldViolations"][0]
    assert violation["field"] == "generation_config.thinking_config.thinking_budget"


def test_anthropic_models_have_a_lifecycle(emulator_url):
    models = list(ant(emulator_url).models.list(limit=100))
    assert all(m.lifecycle in ("active", "deprecated") for m in models)
    assert any(m.lifecycle == "active" for m in models)
    assert all(m.max_tokens and m.max_tokens > 0 for m in models)


# ---------------------------------------------------------------- logprobs, thoughts, candidates


def test_openai_logprobs_are_deterministic(emulator_url):
    c = oai(emulator_url)
    kw = dict(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=3)
    a = c.chat.completions.create(**kw)
    entries = a.choices[0].logprobs.content
    assert "".join(e.token for e in entries) == a.choices[0].message.content
    assert all(e.logprob <= 0 and len(e.top_logprobs) == 3 and e.top_logprobs[0].token == e.token for e in entries)
    assert [e.logprob for e in entries] == [e.logprob for e in c.chat.completions.create(**kw).choices[0].logprobs.content]
    streamed = [
        lp for ch in c.chat.completions.create(**kw, stream=True) if ch.choices and ch.choices[0].logprobs
        for lp in ch.choices[0].logprobs.content
    ]
    assert [e.logprob for e in streamed] == [e.logprob for e in entries]
    assert c.chat.completions.create(model="gpt-4o-mini", messages=kw["messages"]).choices[0].logprobs is None
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="gpt-4o-mini", messages=kw["messages"], top_logprobs=2)
    assert e.value.param == "top_logprobs"


def test_gemini_thoughts_and_candidate_count(emulator_url):
    g = gem(emulator_url)
    r = g.models.generate_content(
        model="gemini-2.5-flash",
        contents="Plan a trip to Rome.",
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True)),
    )
    parts = r.candidates[0].content.parts
    assert parts[0].thought is True and parts[0].text
    assert not parts[1].thought and "Workshop Hub offline emulator" in parts[1].text
    assert r.text == parts[1].text  # the SDK leaves thoughts out of .text
    assert tokens(parts[0].text) <= r.usage_metadata.thoughts_token_count
    three = g.models.generate_content(
        model="gemini-2.0-flash", contents="hi", config=types.GenerateContentConfig(candidate_count=3)
    )
    assert [c.index for c in three.candidates] == [0, 1, 2]
    texts = [c.content.parts[0].text for c in three.candidates]
    assert three.usage_metadata.candidates_token_count == sum(tokens(t) for t in texts)
    assert len(set(texts)) > 1
    with pytest.raises(genai_errors.ClientError):
        g.models.generate_content(
            model="gemini-2.0-flash", contents="hi", config=types.GenerateContentConfig(candidate_count=9)
        )
