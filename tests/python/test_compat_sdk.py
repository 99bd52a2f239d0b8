"""The official `openai` SDK through the Hub's compatible surface (`/v1`) with Claude and Gemini
models, answered by the built-in emulator (`--offline`).

What the app is told (usage, finish reasons, tool calls, errors) is checked against what the Hub
recorded and against what a native call of the same request costs.
"""

import base64
import json

import anthropic
import openai
import pydantic
import pytest

from hub_process import HubProcess, httpx

CLAUDE = "claude-sonnet-4-5"
GEMINI = "gemini-2.5-flash"
PROMPT = "Tell me about lighthouses."
# A 1×1 PNG.
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
    )
).decode()
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def hub():
    h = HubProcess("--offline")
    yield h
    h.close()


@pytest.fixture(scope="module")
def key(hub):
    return hub.create_app("compat")["key"]


@pytest.fixture(scope="module")
def client(hub, key):
    return openai.OpenAI(api_key=key, base_url=f"{hub.base}/v1", max_retries=0)


def say(text=PROMPT):
    return [{"role": "user", "content": text}]


def last_row(hub, count_before):
    rows = hub.wait_usage(count_before + 1)
    assert len(rows) == count_before + 1
    with hub.db() as conn:
        surface = conn.execute("SELECT surface FROM usage_records ORDER BY rowid DESC LIMIT 1").fetchone()[0]
    return {**rows[-1], "surface": surface}


def assert_told_is_billed(usage, row):
    assert usage.prompt_tokens == row["input_tokens"]
    assert usage.completion_tokens == row["output_tokens"]
    assert usage.prompt_tokens_details.cached_tokens == row["cached_input_tokens"]
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert row["surface"] == "compatible"
    assert row["cost_micro_usd"] > 0
    assert row["estimated"] == 0


# ---------------------------------------------------------------- text and streams


def test_claude_text_costs_what_the_native_call_costs(hub, key, client):
    before = hub.usage_count()
    reply = client.chat.completions.create(model=CLAUDE, messages=say(), max_tokens=80)
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.model == CLAUDE
    compat = last_row(hub, before)
    assert_told_is_billed(reply.usage, compat)
    native = anthropic.Anthropic(api_key=key, base_url=f"{hub.base}/anthropic", max_retries=0)
    native.messages.create(
        model=CLAUDE, max_tokens=80, messages=[{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]
    )
    row = last_row(hub, before + 1)
    for field in ("input_tokens", "output_tokens", "cost_micro_usd"):
        assert row[field] == compat[field], field
    assert row["surface"] == "native"


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_stream_with_usage(hub, client, model):
    before = hub.usage_count()
    stream = client.chat.completions.create(
        model=model, messages=say(), stream=True, stream_options={"include_usage": True}
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text
    assert finish in ("stop", "length")
    row = last_row(hub, before)
    assert row["streamed"] == 1
    assert_told_is_billed(usage, row)


def test_gemini_text(hub, client):
    before = hub.usage_count()
    reply = client.chat.completions.create(
        model=GEMINI, messages=[{"role": "system", "content": "Be brief."}, *say()], reasoning_effort="none"
    )
    assert reply.usage.completion_tokens_details.reasoning_tokens == 0
    assert reply.choices[0].message.content
    assert_told_is_billed(reply.usage, last_row(hub, before))


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_image_input(hub, client, model):
    before = hub.usage_count()
    reply = client.chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                ],
            }
        ],
    )
    assert reply.choices[0].message.content
    assert_told_is_billed(reply.usage, last_row(hub, before))


def test_gemini_embeddings(hub, client):
    before = hub.usage_count()
    result = client.embeddings.create(model="gemini-embedding-001", input=["first text", "second text"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) > 8
    assert result.data[0].embedding != result.data[1].embedding
    row = last_row(hub, before)
    assert row["provider"] == "gemini"
    assert result.usage.prompt_tokens == row["input_tokens"]


def test_models_list_every_provider(client):
    ids = {m.id for m in client.models.list()}
    assert {CLAUDE, GEMINI, "gpt-4o-mini"} <= ids
    assert client.models.retrieve("anthropic/claude-future-9").owned_by == "anthropic"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("mystery-model")


# ---------------------------------------------------------------- tools and structured output


def test_claude_agent_loop_with_tools(hub, client):
    messages = say("What is the weather in Oslo? Use the get_weather tool.")
    first = client.chat.completions.create(
        model=CLAUDE, messages=messages, tools=[WEATHER_TOOL], tool_choice="required", max_tokens=200
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)
    messages += [choice.message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 4}'}]
    second = client.chat.completions.create(model=CLAUDE, messages=messages, tools=[WEATHER_TOOL], max_tokens=200)
    assert second.choices[0].message.content
    assert second.choices[0].finish_reason in ("stop", "length")
    assert not second.choices[0].message.tool_calls


def test_claude_tool_call_streams_in_fragments(client):
    stream = client.chat.completions.create(
        model=CLAUDE,
        messages=say("Weather in Oslo, please, with the get_weather tool."),
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=200,
        stream=True,
    )
    calls, finish = {}, None
    for chunk in stream:
        for frag in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(frag.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += frag.id or ""
            entry["name"] += (frag.function.name if frag.function else None) or ""
            entry["arguments"] += (frag.function.arguments if frag.function else None) or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather", "a repeated name would show here concatenated"
    assert calls[0]["id"].startswith("toolu_")
    assert "city" in json.loads(calls[0]["arguments"])


class City(pydantic.BaseModel):
    name: str
    population: int


def test_gemini_structured_output_parses(client):
    reply = client.chat.completions.parse(model=GEMINI, messages=say("Name a city as JSON."), response_format=City)
    city = reply.choices[0].message.parsed
    assert isinstance(city, City)


# ---------------------------------------------------------------- errors


def test_a_bad_app_key_is_an_authentication_error(hub):
    bad = openai.OpenAI(api_key="whk_nobody00_" + "0" * 32, base_url=f"{hub.base}/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model=CLAUDE, messages=say())
    assert e.value.code == "invalid_app_key"


def test_an_unknown_model_is_not_found_with_a_hint(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="mystery-model", messages=say())
    assert e.value.code == "model_not_available"
    assert "provider/model" in e.value.message


def test_a_parameter_that_cannot_be_honoured_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=CLAUDE, messages=say(), logit_bias={"50256": -100})
    assert e.value.param == "logit_bias"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=CLAUDE, messages=say(), n=2)
    assert e.value.param == "n"


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_a_provider_rate_limit_is_a_rate_limit_error_with_retry_after(client, model):
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model=model, messages=say(), extra_headers={"x-emulator-fault": "rate_limit"})
    assert e.value.response.headers.get("retry-after")


def test_overloaded_claude_is_a_retryable_503(client):
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model=CLAUDE, messages=say(), extra_headers={"x-emulator-fault": "overloaded"})
    assert e.value.status_code == 503


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_a_cut_stream_raises_and_is_recorded_as_estimated(hub, client, model):
    before = hub.usage_count()
    stream = client.chat.completions.create(
        model=model, messages=say(), max_tokens=200, stream=True, extra_headers={"x-emulator-fault": "drop_mid_stream"}
    )
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for _ in stream:
            pass
    row = last_row(hub, before)
    assert row["estimated"] == 1
    assert row["surface"] == "compatible"


# ---------------------------------------------------------------- structured output and agents


def test_claude_structured_output_parses(client):
    reply = client.chat.completions.parse(model=CLAUDE, messages=say("Name a city as JSON."), response_format=City)
    assert isinstance(reply.choices[0].message.parsed, City)


def test_gemini_agent_loop_with_tools(client):
    first = client.chat.completions.create(
        model=GEMINI, messages=say("What is the weather in Oslo?"), tools=[WEATHER_TOOL], tool_choice="required"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    messages = say("What is the weather in Oslo?") + [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 4}'},
    ]
    second = client.chat.completions.create(model=GEMINI, messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content


# ---------------------------------------------------------------- LangChain


def test_langchain_chat_openai_with_claude(hub, key):
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return "4C"

    llm = ChatOpenAI(model=CLAUDE, api_key=key, base_url=f"{hub.base}/v1", max_retries=0)
    before = hub.usage_count()
    reply = llm.invoke("Tell me about lighthouses.")
    assert reply.content
    assert reply.usage_metadata["input_tokens"] == last_row(hub, before)["input_tokens"]
    called = llm.bind_tools([get_weather], tool_choice="get_weather").invoke("Weather in Oslo?")
    assert called.tool_calls[0]["name"] == "get_weather"
    assert "city" in called.tool_calls[0]["args"]
    chunks = list(llm.stream("Tell me about lighthouses."))
    assert "".join(c.content for c in chunks)
